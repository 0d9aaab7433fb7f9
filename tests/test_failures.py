"""Failures injected on purpose: lost workers and schedulers, missing, truncated and corrupt
chunks, outputs whose writer stops half-way.

The cluster tests run on ``dask scheduler`` + ``dask worker`` processes on loopback
(``ProcessCluster`` in conftest.py); each kill waits until the victim is running one of the
fit's tasks, so it lands mid-fit.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import time

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from conftest import ProcessCluster
from test_cluster_processes import estimators, fitted_values

from bigclust import driver
from bigclust._storage import MARKER, IncompleteStoreError, atomic_directory
from bigclust.datasets import make_blobs, write_zarr
from bigclust.driver import SchedulerLostError, _run_kernel, compute, map_reduce, stream_fold
from bigclust.io import CorruptChunkError, MissingChunkError, as_dask_array

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _values(n=1000, d=3):
    return np.random.default_rng(0).standard_normal((n, d)).astype(np.float32) + 1


def _foreign_store(path, values, codec):
    """A store written by plain zarr (no bigclust marker, no checksum): 10 chunks."""
    z = zarr.create_array(str(path), shape=values.shape, chunks=(100, values.shape[1]),
                          dtype=values.dtype, compressors=None if codec == "none" else "auto",
                          fill_value=0.0)  # fmt: skip
    z[:] = values
    return str(path)


def _reader_kind(X):
    (task, *_) = dict(X.__dask_graph__()).values()
    return type(task.args[0].value).__name__


# --- missing, truncated and corrupt chunks ----------------------------------------------------


@pytest.mark.parametrize("codec, reader", [("none", "ZarrChunkFiles"), ("zstd", "ZarrReader")])
@pytest.mark.parametrize("ours", [False, True], ids=["zarr-written", "bigclust-written"])
def test_a_chunk_deleted_after_opening_is_an_error_naming_it(codec, reader, ours, tmp_path):
    values = _values()
    path = str(tmp_path / "x.zarr")
    if ours:
        write_zarr(da.from_array(values, chunks=(100, 3)), path, codec=codec)
    else:
        _foreign_store(path, values, codec)
    X = as_dask_array(path, rows_per_chunk=100)
    assert _reader_kind(X) == reader
    os.remove(os.path.join(path, "c", "3", "0"))
    with pytest.raises(MissingChunkError, match=r"chunk c/3/0 .*x\.zarr.* is missing") as info:
        X.compute(scheduler="sync")
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("name", ["KMeans", "MiniBatchKMeans", "GaussianMixture"])
@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_a_store_deleted_during_a_fit_is_an_error_not_zeros(codec, name, tmp_path, monkeypatch):
    """Deleting the store during a fit ended in a "successful" fit, all centers at 0."""
    import bigclust.driver

    path = _foreign_store(tmp_path / "x.zarr", _values(20_000, 3), codec)
    est = estimators()[name]
    passes = []

    def delete_after_the_second_read(X, *args, **kwargs):
        passes.append(1)
        if len(passes) == 2:
            shutil.rmtree(path)
        return read(X, *args, **kwargs)

    read = bigclust.driver._read_local if name == "MiniBatchKMeans" else dask.compute
    target = "_read_local" if name == "MiniBatchKMeans" else "dask"
    if target == "dask":
        monkeypatch.setattr(bigclust.driver.dask, "compute", delete_after_the_second_read)
    else:
        monkeypatch.setattr(bigclust.driver, "_read_local", delete_after_the_second_read)
    with dask.config.set(scheduler="threads"):
        with pytest.raises(MissingChunkError, match=r"chunk c/\d+/0 .*x\.zarr.* is missing"):
            est.fit(path)
    assert len(passes) >= 2
    assert not [k for k in vars(est) if k.endswith("_")], "left half-fitted"


def test_chunks_absent_when_opened_still_read_as_the_fill_value(tmp_path):
    values = _values()
    values[200:300] = 0.0  # a chunk of the fill value: zarr writes no object for it
    path = _foreign_store(tmp_path / "x.zarr", values, "zstd")
    assert not os.path.exists(os.path.join(path, "c", "2", "0"))
    X = as_dask_array(path, rows_per_chunk=100)
    np.testing.assert_array_equal(X.compute(scheduler="sync"), values)


def test_a_truncated_compressed_chunk_names_the_chunk(tmp_path):
    path = _foreign_store(tmp_path / "x.zarr", _values(), "zstd")
    chunk = os.path.join(path, "c", "4", "0")
    with open(chunk, "rb") as f:
        data = f.read()
    with open(chunk, "wb") as f:
        f.write(data[: len(data) // 2])
    X = as_dask_array(path)
    with pytest.raises(CorruptChunkError, match=r"chunk c/4/0 \(rows 400-499\) .*x\.zarr"):
        X.compute(scheduler="sync")


@pytest.mark.parametrize("codec", ["none", "zstd"])
@pytest.mark.parametrize("rows", [None, 30], ids=["whole-chunks", "partial-chunks"])
def test_a_corrupted_chunk_of_a_bigclust_store_is_detected(codec, rows, tmp_path):
    values = _values()
    path = str(tmp_path / "x.zarr")
    write_zarr(da.from_array(values, chunks=(100, 3)), path, codec=codec)
    np.testing.assert_array_equal(as_dask_array(path, rows_per_chunk=rows).compute(), values)
    chunk = os.path.join(path, "c", "6", "0")
    with open(chunk, "r+b") as f:  # one bit flipped in the middle of the chunk
        f.seek(os.path.getsize(chunk) // 2)
        byte = f.read(1)[0]
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte ^ 0x10]))
    X = as_dask_array(path, rows_per_chunk=rows)
    with pytest.raises(CorruptChunkError, match=r"chunk c/6/0 \(rows 600-699\).*x\.zarr"):
        X.compute(scheduler="sync")


def test_a_truncated_chunk_of_a_bigclust_store_is_detected(tmp_path):
    path = str(tmp_path / "x.zarr")
    write_zarr(da.from_array(_values(), chunks=(100, 3)), path)
    chunk = os.path.join(path, "c", "1", "0")
    with open(chunk, "r+b") as f:
        f.truncate(os.path.getsize(chunk) - 4)  # the checksum cut off
    with pytest.raises(CorruptChunkError, match=r"chunk c/1/0 .* truncated"):
        as_dask_array(path).compute(scheduler="sync")


# --- outputs that are complete or absent ------------------------------------------------------


def _failing_at_chunk(values, bad_chunk, rows=100):
    def block(x, block_info=None):
        if block_info[0]["chunk-location"][0] == bad_chunk:
            raise RuntimeError("the writer dies here")
        return x

    X = da.from_array(values, chunks=(rows, values.shape[1]))
    return X.map_blocks(block, dtype=X.dtype, meta=np.empty((0, 0), X.dtype))


def test_a_local_store_whose_writer_fails_is_not_there(tmp_path):
    path = tmp_path / "labels.zarr"
    with pytest.raises(RuntimeError, match="the writer dies here"):
        write_zarr(_failing_at_chunk(_values(), 7), path)
    assert not path.exists()
    _only_hidden_temporaries(tmp_path, [])


def _only_hidden_temporaries(directory, expected):
    # Tasks still running when another fails may recreate the temporary directory after it
    # was deleted: it can stay behind, hidden and never taken for the output.
    names = sorted(n for n in os.listdir(directory) if not n.startswith(".x.zarr.tmp-"))
    names = [n for n in names if not n.startswith(".labels.zarr.tmp-")]
    assert names == expected


def test_a_local_store_is_replaced_only_when_complete(tmp_path):
    path = tmp_path / "x.zarr"
    old = _values()
    write_zarr(da.from_array(old, chunks=(100, 3)), path)
    with pytest.raises(RuntimeError, match="the writer dies here"):
        write_zarr(_failing_at_chunk(old + 1, 5), path, overwrite=True)
    np.testing.assert_array_equal(as_dask_array(str(path)).compute(), old)
    write_zarr(da.from_array(old + 1, chunks=(100, 3)), path, overwrite=True)
    np.testing.assert_array_equal(as_dask_array(str(path)).compute(), old + 1)
    _only_hidden_temporaries(tmp_path, ["x.zarr"])


def test_an_object_store_output_left_half_written_is_refused(tmp_path):
    # memory:// has no atomic rename: the store is written in place, marked complete last.
    url = f"memory://bigclust-failures-{os.getpid()}-{time.monotonic_ns()}/x.zarr"
    with pytest.raises(RuntimeError, match="the writer dies here"):
        write_zarr(_failing_at_chunk(_values(), 7), url)
    assert zarr.open_array(url, mode="r").attrs[MARKER] == {"complete": False}
    with pytest.raises(IncompleteStoreError, match=r"x\.zarr' is incomplete"):
        as_dask_array(url)
    write_zarr(da.from_array(_values(), chunks=(100, 3)), url, overwrite=True)
    np.testing.assert_array_equal(as_dask_array(url).compute(), _values())


def test_atomic_directory_for_other_outputs(tmp_path):
    path = tmp_path / "model"
    with atomic_directory(path) as (target, renamed):
        assert renamed and not path.exists()
        with open(os.path.join(target, "params.json"), "w") as f:
            f.write("{}")
    assert os.listdir(path) == ["params.json"]
    with pytest.raises(FileExistsError, match="pass overwrite=True"), atomic_directory(path):
        pass
    with pytest.raises(ZeroDivisionError), atomic_directory(path, overwrite=True) as (t, _):
        open(os.path.join(t, "half"), "w").close()
        1 / 0  # noqa: B018
    assert os.listdir(path) == ["params.json"] and sorted(os.listdir(tmp_path)) == ["model"]


# --- worker and scheduler processes killed mid-fit --------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from test_cluster_processes import N_FEATURES, N_SAMPLES, K

    X, _ = make_blobs(N_SAMPLES, N_FEATURES, centers=K, random_state=7, dtype=np.float64,
                      chunk_rows=6250)  # fmt: skip
    path = tmp_path_factory.mktemp("failure-data") / "blobs.zarr"
    with dask.config.set(scheduler="threads"):
        write_zarr(X, path)
    return str(path)


def long_estimators():
    """Fits of a few seconds, so that a kill lands in the middle."""
    est = estimators()
    est["KMeans"].set_params(max_iter=40)
    est["MiniBatchKMeans"].set_params(max_iter=8)
    est["GaussianMixture"].set_params(max_iter=40)
    return est


#: Task keys of each estimator's main loop: Lloyd / EM passes, mini-batch folds.
LOOP_TASKS = {"KMeans": ("map-",), "GaussianMixture": ("map-",),
              "MiniBatchKMeans": ("_fold_task",)}  # fmt: skip


@pytest.fixture(scope="module")
def killable(tmp_path_factory):
    """Scheduler, two nanny workers and one ``--no-nanny`` worker, for the kill tests.

    The no-nanny worker gets no OMP/OPENBLAS_NUM_THREADS from the environment, as when a
    user starts ``dask worker --no-nanny`` by hand.
    """
    cluster = ProcessCluster(tmp_path_factory.mktemp("killable"))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    try:
        cluster.start(n_workers=2)
        cluster.add_worker(nanny=False, env=env)
        cluster.env = env
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def undisturbed(store, killable):
    """Each estimator fitted on the killable cluster, nothing killed."""
    client = killable.client
    with client.as_current(), dask.config.set(scheduler=client):
        return {name: fitted_values(est.fit(store)) for name, est in long_estimators().items()}


def test_undisturbed_fits_with_a_no_nanny_worker_equal_threaded(store, undisturbed):
    # A worker without a nanny ran BLAS multi-threaded: 9.5e-5 relative after 50 Lloyd steps.
    from test_cluster_processes import assert_same_fit

    with dask.config.set(scheduler="threads"):
        for name, est in long_estimators().items():
            assert_same_fit(fitted_values(est.fit(store)), undisturbed[name], rtol=1e-9)


#: Each estimator and each way to kill a worker once (a Latin square), the data streamed from
#: the store every pass (as when they are larger than the cluster) or kept in worker memory
#: (the small store's default: the victim's chunks are lost with it and read again); the
#: other combinations with BIGCLUST_ALL_KILLS=1 (about 5 s each). Only the combinations that
#: run are generated: a skipped row would prove nothing.
KILLS = [("KMeans", "worker", "kept"), ("MiniBatchKMeans", "no-nanny", "streamed"),
         ("GaussianMixture", "nanny+worker", "streamed"),
         ("GaussianMixture", "worker", "kept")]  # fmt: skip
ALL_KILLS = list(itertools.product(["KMeans", "MiniBatchKMeans", "GaussianMixture"],
                                   ["worker", "nanny+worker", "no-nanny"],
                                   ["streamed", "kept"]))  # fmt: skip


@pytest.mark.parametrize(
    "name, how, placement", ALL_KILLS if os.environ.get("BIGCLUST_ALL_KILLS") else KILLS
)
def test_a_worker_killed_mid_fit_changes_nothing(
    name, how, placement, store, killable, undisturbed
):
    from test_cluster_processes import assert_same_fit

    nanny = how != "no-nanny"
    alive = killable.alive_workers()
    victim = next(n for n, p in alive.items() if _has_nanny(killable, n) == nanny)
    killer = killable.kill_when_busy(
        victim, "worker" if how == "worker" else "process", match=LOOP_TASKS[name]
    )
    client = killable.client
    kept = {driver.KEEP_IN_MEMORY_CONFIG: placement == "kept"}
    with client.as_current(), dask.config.set(kept, scheduler=client):
        est = long_estimators()[name].fit(store)
    finished_at = time.monotonic()
    killer.join(5)
    assert killer.killed_at is not None, "the victim ran none of the fit's tasks"
    assert killer.killed_at < finished_at
    assert _dead(killer.pid)
    assert_same_fit(fitted_values(est), undisturbed[name], rtol=0)  # bit for bit
    # Leave the cluster as it was: the nanny restarts its worker; others are replaced.
    if how == "worker":
        killable.wait_for_workers()
    else:
        killable.add_worker(nanny=nanny, env=None if nanny else killable.env)


def test_elkan_with_a_worker_killed_between_passes_equals_lloyd(
    store, killable, undisturbed, monkeypatch
):
    """The worker holding some chunks' bounds dies between two bounded passes: those chunks
    run elsewhere from full distances, and the fit is the undisturbed Lloyd fit, bit for bit."""
    from test_cluster_processes import assert_same_fit

    from bigclust.cluster import _elkan

    victim = next(n for n in killable.alive_workers() if _has_nanny(killable, n))
    address, pid = killable.addresses()[victim], killable.worker_pid(victim)
    original = _elkan.BoundedPasses.__call__
    held = []

    def killing(self, *args, **kwargs):
        if self.iteration == 1 and not held:  # after the first pass, before the second
            held.append(sum(1 for where in self.where.values() if where == address))
            os.kill(pid, signal.SIGKILL)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(_elkan.BoundedPasses, "__call__", killing)
    client = killable.client
    with client.as_current(), dask.config.set(scheduler=client):
        est = long_estimators()["KMeans"].set_params(algorithm="elkan").fit(store)
    assert held and held[0] > 0  # the victim held bounds when it died
    assert _dead(pid)
    assert_same_fit(fitted_values(est), undisturbed["KMeans"], rtol=0)
    killable.wait_for_workers()


_CLIENT_SCRIPT = """
import sys, dask
from distributed import Client
from test_failures import long_estimators
client = Client(scheduler_file=sys.argv[1])
with dask.config.set(scheduler=client):
    long_estimators()["KMeans"].set_params(max_iter=10_000).fit(sys.argv[2])
"""


def test_a_client_killed_mid_fit_leaves_the_cluster_healthy(store, killable, undisturbed):
    import subprocess
    import sys

    from test_cluster_processes import assert_same_fit

    env = dict(os.environ)
    tests = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(tests), tests, env.get("PYTHONPATH", "")])
    client_process = subprocess.Popen(
        [sys.executable, "-c", _CLIENT_SCRIPT, str(killable.scheduler_file), store],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not any(killable.client.processing().values()):
            assert time.monotonic() < deadline and client_process.poll() is None
            time.sleep(0.01)
    finally:
        os.killpg(client_process.pid, signal.SIGKILL)
        client_process.wait(timeout=30)
    client = killable.client
    with client.as_current(), dask.config.set(scheduler=client):
        for name, est in long_estimators().items():
            assert_same_fit(fitted_values(est.fit(store)), undisturbed[name], rtol=0)


def _dead(pid, timeout=10.0):
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True  # killed; its parent has not collected it yet
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def _has_nanny(cluster, name):
    return "--nanny" in cluster.workers[name].args


def _report_blas_threads(block, params, start):
    from threadpoolctl import threadpool_info

    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_no_nanny_workers_run_kernels_with_one_blas_thread(killable):
    name = next(n for n in killable.alive_workers() if not _has_nanny(killable, n))
    address = killable.addresses()[name]
    client = killable.client
    outside = client.run(_report_blas_threads, None, None, 0, workers=[address])[address]
    if max(outside, default=1) <= 1:
        pytest.skip("this worker's BLAS runs one thread anyway (one core)")
    inside = client.submit(
        _run_kernel, _report_blas_threads, False, np.zeros((10, 2)), None, 0,
        workers=[address], pure=False,
    ).result()  # fmt: skip
    assert inside.stats and set(inside.stats) == {1}, (outside, inside.stats)


@pytest.mark.parametrize("name", ["KMeans", "MiniBatchKMeans"])  # passes, and folds
def test_a_scheduler_killed_mid_fit_is_one_clear_error(name, store, tmp_path):
    cluster = ProcessCluster(tmp_path / "cluster")
    try:
        cluster.start(n_workers=2)
        client = cluster.client
        address = client.scheduler.address
        watcher = _kill_scheduler_when_busy(cluster, LOOP_TASKS[name])
        est = long_estimators()[name]
        with client.as_current(), dask.config.set(scheduler=client):
            with pytest.raises(SchedulerLostError, match=address):
                est.fit(store)
            failed_at = time.monotonic()
            watcher.join(5)
            assert watcher.killed_at is not None and watcher.killed_at < failed_at
            # Without the guard MiniBatchKMeans waited 30 s to reconnect, then an OSError.
            assert failed_at - watcher.killed_at < 15
            # The driver's next pass fails at once, without waiting for a reconnection.
            started = time.monotonic()
            with pytest.raises(SchedulerLostError, match=f"scheduler at {address} is not"):
                map_reduce(_report_blas_threads, da.zeros((10, 2), chunks=5), check_finite=False)
            with pytest.raises(SchedulerLostError, match=address):
                next(stream_fold(_fold, da.zeros((10, 2), chunks=5), [slice(0, 5)], 0))
            with pytest.raises(SchedulerLostError, match=address):
                compute(da.zeros((10, 2), chunks=5).sum())
            assert time.monotonic() - started < 5
        assert not [k for k in vars(est) if k.endswith("_")], "left half-fitted"
    finally:
        cluster.close()


def test_the_schedulers_address_outlives_the_clients_reconnection():
    # A client that gives up reconnecting drops its `scheduler`; the errors after that (the
    # test above, on a slow machine) must still name the address.
    class Client:
        pass

    client = Client()
    client.scheduler = type("Comm", (), {"address": "tcp://127.0.0.1:8786"})()
    assert driver._scheduler_address(client) == "tcp://127.0.0.1:8786"
    client.scheduler = None
    assert driver._scheduler_address(client) == "tcp://127.0.0.1:8786"
    assert driver._scheduler_address(Client()) == "(unknown address)"


def _fold(block, weights, state, params, piece):
    return state + 1


def _kill_scheduler_when_busy(cluster, match):
    import threading

    def watch():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            processing = cluster.client.processing()
            if any(m in str(k) for keys in processing.values() for k in keys for m in match):
                os.killpg(cluster.scheduler.pid, signal.SIGKILL)
                thread.killed_at = time.monotonic()
                return
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.killed_at = None
    thread.start()
    return thread
