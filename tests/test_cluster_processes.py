"""The estimators on a real cluster: `dask scheduler` and `dask worker` as separate processes.

The cluster (``process_cluster`` in conftest.py) is shared by this module and started once;
tests that kill processes are in test_failures.py, on clusters of their own.
"""

from __future__ import annotations

import dask
import numpy as np
import pytest
import zarr
from conftest import ProcessCluster

import bigclust
from bigclust import GaussianMixture, KMeans, MiniBatchKMeans
from bigclust.datasets import make_blobs, write_zarr

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

N_SAMPLES, N_FEATURES, K = 50_000, 8, 4  # 3.2 MB: several Dask chunks


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Blobs in a float64 Zarr store of 8 chunks (3 Dask chunks), written by bigclust."""
    X, _ = make_blobs(N_SAMPLES, N_FEATURES, centers=K, random_state=7, dtype=np.float64,
                      chunk_rows=6250)  # fmt: skip
    path = tmp_path_factory.mktemp("cluster-data") / "blobs.zarr"
    with dask.config.set(scheduler="threads"):
        write_zarr(X, path)
    return str(path)


def estimators():
    """One of each estimator with fixed, seeded settings (fresh instances per call)."""
    return {
        "KMeans": KMeans(K, n_init=2, random_state=0, max_iter=8, tol=0),
        "MiniBatchKMeans": MiniBatchKMeans(K, n_init=1, random_state=0, batch_size=512,
                                           max_iter=3, max_no_improvement=None),
        "GaussianMixture": GaussianMixture(K, random_state=0, max_iter=8, tol=0),
    }  # fmt: skip


def fitted_values(est):
    """Every fitted number an estimator exposes, by name (labels_ computed)."""
    names = ["cluster_centers_", "inertia_", "n_iter_", "weights_", "means_", "covariances_",
             "lower_bound_", "converged_", "n_steps_"]  # fmt: skip
    out = {n: np.asarray(getattr(est, n)) for n in names if hasattr(est, n)}
    if hasattr(est, "labels_"):
        out["labels_"] = np.asarray(dask.compute(est.labels_)[0])
    return out


def assert_same_fit(a: dict, b: dict, rtol: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        if rtol == 0 or a[name].dtype.kind in "biu":
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        else:
            np.testing.assert_allclose(a[name], b[name], rtol=rtol, atol=0, err_msg=name)


@pytest.fixture(scope="module")
def threaded_fits(store):
    """The threaded scheduler's fit of each estimator: the reference."""
    with dask.config.set(scheduler="threads"):
        return {name: fitted_values(est.fit(store)) for name, est in estimators().items()}


@pytest.mark.parametrize("name", ["KMeans", "MiniBatchKMeans", "GaussianMixture"])
def test_fit_on_process_cluster_equals_threaded(name, store, threaded_fits, on_process_cluster):
    est = estimators()[name].fit(store)
    assert_same_fit(fitted_values(est), threaded_fits[name], rtol=1e-9)


@pytest.mark.parametrize("name", ["KMeans", "MiniBatchKMeans", "GaussianMixture"])
def test_labels_written_from_the_cluster_equal_predict_on_the_client(
    name, store, tmp_path, on_process_cluster
):
    est = estimators()[name].fit(store)
    labels = est.labels_ if hasattr(est, "labels_") else est.predict(store)
    labels.to_zarr(str(tmp_path / "dask.zarr"))  # dask's own writer, run by the workers
    write_zarr(labels, tmp_path / "ours.zarr")  # bigclust's atomic, checksummed writer
    with dask.config.set(scheduler="threads"):
        expected = est.predict(store).compute()
    for written in ("dask.zarr", "ours.zarr"):
        np.testing.assert_array_equal(zarr.open_array(str(tmp_path / written))[:], expected)


def test_repeated_fits_send_each_key_with_one_run_spec(store, on_process_cluster):
    """The scheduler warned "Detected different `run_spec`" when one fit sent a chunk's key
    as a getter and the next (or the same) sent it as an alias of a fused task."""
    before = len(on_process_cluster.log("scheduler"))
    for _ in range(2):
        for est in estimators().values():
            est.fit(store)
            dask.compute(est.predict(store)[:10])
    on_process_cluster.client.run_on_scheduler(lambda: None)  # the log is written by now
    log = on_process_cluster.log("scheduler")[before:]
    assert "Detected different `run_spec`" not in log, log


@pytest.fixture
def growing_cluster(tmp_path):
    """A cluster of its own, started with one worker; the test adds the others."""
    cluster = ProcessCluster(tmp_path / "growing")
    try:
        yield cluster.start(n_workers=1)
    finally:
        cluster.close()


# Worker processes, and the row chunks of the Dask array the fits read there (None: the
# store's own, 3 chunks): each count with another chunking, so that three fits per estimator
# cover both (test_determinism.py varies the chunking on one scheduler at a time).
LAYOUTS = ((1, None), (2, 7_000), (3, 20_000))


def test_same_answer_on_one_two_and_three_workers_any_chunking(
    store, threaded_fits, growing_cluster
):
    # DESIGN.md contract 2: the number of worker processes and the chunking change only the
    # order of floating-point sums, never which run is best, n_iter_ or the label numbering.
    client = growing_cluster.client
    for n_workers, rows in LAYOUTS:
        while len(growing_cluster.addresses()) < n_workers:
            growing_cluster.add_worker()
        assert len(client.scheduler_info(n_workers=-1)["workers"]) == n_workers
        X = bigclust.as_dask_array(store)
        if rows is not None:
            X = X.rechunk((rows, N_FEATURES))
        with client.as_current(), dask.config.set(scheduler=client):
            for name, est in estimators().items():
                fitted = fitted_values(est.fit(X))
                try:
                    assert_same_fit(fitted, threaded_fits[name], rtol=1e-9)
                except AssertionError as error:
                    raise AssertionError(f"{name}, {n_workers} workers, rows {rows}") from error
