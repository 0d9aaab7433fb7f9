"""Small in-memory data: run in this process, seeded on the data, the same bits as the Dask path.

Below ``bigclust.driver.SMALL_DATA_BYTES`` a NumPy input runs every pass (and every mini-batch
fold) in this process as one chunk; k-means|| on data no larger than what it would sample
seeds by greedy k-means++ on the rows themselves. Both are decided from sizes alone, so the
same fit over a one-chunk Dask array gives the same bits, and over several chunks the same
result to 1e-9.
"""

from __future__ import annotations

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

from bigclust import BayesianGaussianMixture, GaussianMixture, KMeans, MiniBatchKMeans
from bigclust.cluster import _init

ESTIMATORS = [
    KMeans(5, random_state=0),
    KMeans(5, n_init=3, random_state=1),
    MiniBatchKMeans(5, batch_size=100, n_init=3, random_state=0),
    GaussianMixture(3, n_init=2, random_state=0),
    BayesianGaussianMixture(n_components=4, max_iter=20, random_state=0),
]
IDS = ["kmeans", "kmeans-n_init", "minibatch", "gmm", "bgmm"]


@pytest.fixture(scope="module")
def X():
    X, _ = make_blobs(1250, 2, centers=5, cluster_std=[0.4, 0.3, 0.1, 0.1, 0.1], random_state=7)
    return X


def _fitted(estimator, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clone(estimator).fit(X)


def _results(fitted, X) -> dict:
    names = ["cluster_centers_", "inertia_", "means_", "covariances_", "weights_", "n_iter_"]
    found = {n: getattr(fitted, n) for n in names if hasattr(fitted, n)}
    found["labels"] = np.asarray(fitted.predict(X))
    found["score"] = fitted.score(X)  # a pass of its own, in process too
    return found


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_in_process_equals_one_chunk_dask_bitwise(X, estimator):
    here = _results(_fitted(estimator, X), X)
    lazy = da.from_array(X, chunks=X.shape)
    with dask.config.set(scheduler="threads"):
        one_chunk = _results(_fitted(estimator, lazy), X)
    for name, value in here.items():
        np.testing.assert_array_equal(one_chunk[name], value, err_msg=name)


@pytest.mark.parametrize("estimator", ESTIMATORS[:2] + ESTIMATORS[3:], ids=IDS[:2] + IDS[3:])
def test_in_process_equals_several_chunks(X, estimator):
    # Mini-batch is left out: its batches are keyed by row position, the same on any
    # chunking, but its folds run over pieces, not chunks (tests/test_minibatch.py).
    here = _results(_fitted(estimator, X), X)
    lazy = da.from_array(X, chunks=(160, 2))
    with dask.config.set(scheduler="threads"):
        chunked = _results(_fitted(estimator, lazy), X)
    for name, value in here.items():
        np.testing.assert_allclose(chunked[name], value, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_a_distributed_client_runs_nothing_for_small_data(
    X, estimator, distributed_client, monkeypatch
):
    from distributed import get_task_stream

    expected = _results(_fitted(estimator, X), X)
    runs = []  # client.run: a round trip to every worker, e.g. to forget per-chunk state
    original_run = distributed_client.run
    monkeypatch.setattr(
        distributed_client, "run", lambda *a, **k: runs.append(a) or original_run(*a, **k)
    )
    with (
        distributed_client.as_current(),
        dask.config.set(scheduler=distributed_client),
        get_task_stream(distributed_client) as tasks,
    ):
        found = _results(_fitted(estimator, X), X)
    assert tasks.data == [], "small in-memory data must not send tasks to the cluster"
    assert runs == [], "nor run anything on its workers"
    for name, value in expected.items():
        np.testing.assert_array_equal(found[name], value, err_msg=name)


def test_kmeans_parallel_seeds_small_data_by_greedy_kmeans_plusplus(X):
    by_default = KMeans(5, max_iter=1, random_state=3).fit(X).cluster_centers_
    greedy = KMeans(5, init="k-means++", max_iter=1, random_state=3).fit(X).cluster_centers_
    np.testing.assert_array_equal(by_default, greedy)


def test_seeding_on_the_data_is_decided_by_sizes():
    rows = _init.SEED_ON_DATA_ROWS
    assert _init.seeds_on_data(rows, 8, 2.0, 5)
    assert not _init.seeds_on_data(rows + 1, 8, 2.0, 5)
    # More rows than the threshold, but no more than k-means|| would sample: nothing to shrink.
    candidates = 1 + 5 * 2 * 4000
    assert candidates > rows
    assert _init.seeds_on_data(candidates, 4000, 2.0, 5)
    assert not _init.seeds_on_data(candidates + 1, 4000, 2.0, 5)


def test_kmeans_parallel_still_samples_candidates_above_the_threshold(X, monkeypatch):
    monkeypatch.setattr(_init, "SEED_ON_DATA_ROWS", 100)
    by_default = KMeans(5, max_iter=1, random_state=3).fit(X).cluster_centers_
    greedy = KMeans(5, init="k-means++", max_iter=1, random_state=3).fit(X).cluster_centers_
    assert not np.array_equal(by_default, greedy)


@pytest.mark.parametrize("n_init", [1, 10])
def test_small_data_inertia_no_worse_than_scikit_learn(X, n_init):
    seeds = range(6)
    ours = [KMeans(5, n_init=n_init, random_state=s).fit(X).inertia_ for s in seeds]
    theirs = [SkKMeans(5, n_init=n_init, random_state=s).fit(X).inertia_ for s in seeds]
    assert np.mean(ours) <= np.mean(theirs) * (1 + 1e-6)


class _CountingController:
    """Stands in for threadpoolctl's controller: counts the BLAS limits actually set."""

    def __init__(self, real):
        self.real, self.limits = real, 0

    def limit(self, **kwargs):
        self.limits += kwargs.get("user_api") == "blas"
        return self.real.limit(**kwargs)


@pytest.fixture
def blas_limits(monkeypatch):
    from bigclust import _blas

    counting = _CountingController(_blas._controller())
    monkeypatch.setattr(_blas, "_controller", lambda: counting)
    return counting


def test_nested_blas_limits_are_set_once(blas_limits):
    from bigclust._blas import single_blas_thread

    with single_blas_thread(), single_blas_thread(), single_blas_thread():
        pass
    assert blas_limits.limits == 1


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_a_small_fit_sets_the_blas_limit_once(X, estimator, blas_limits, monkeypatch):
    from bigclust import driver

    _fitted(estimator, X)
    assert blas_limits.limits == 1
    monkeypatch.setattr(driver, "SMALL_DATA_BYTES", 1024)  # now streamed: a limit per pass
    with dask.config.set(scheduler="threads"):
        _fitted(estimator, X)
    assert blas_limits.limits > 2


def test_runs_here_follows_place(X, tmp_path):
    from bigclust import driver

    assert driver.runs_here(X) and driver.runs_here(X.astype(np.float32))
    assert driver.runs_here(np.ones((10, 3), np.int8))
    path = tmp_path / "x.npy"
    np.save(path, X)
    assert not driver.runs_here(np.load(path, mmap_mode="r"))
    assert not driver.runs_here(da.from_array(X)) and not driver.runs_here(X.tolist())
    rows = driver.SMALL_DATA_BYTES // 8 // 4
    assert driver.runs_here(np.empty((rows, 4))) and not driver.runs_here(np.empty((rows + 1, 4)))
    assert driver.runs_here(np.empty((2 * rows, 4), np.float32))
