"""KMeans: parity with scikit-learn, chunking/scheduler invariance, init quality, bad input."""

from __future__ import annotations

import re
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from _inputs import as_input
from sklearn.base import clone
from sklearn.cluster import KMeans as SkKMeans
from sklearn.cluster import kmeans_plusplus
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

from bigclust import KMeans
from bigclust.driver import NonFiniteInputError

N_CLUSTERS = 6


@pytest.fixture(scope="module")
def blobs():
    # Well separated blobs: float32 rounding cannot flip a label between near-equidistant
    # centers, so labels can be compared exactly in both dtypes.
    X, _ = make_blobs(
        n_samples=3001, n_features=4, centers=N_CLUSTERS, cluster_std=1.5, random_state=3
    )
    init = X[np.random.default_rng(0).choice(len(X), N_CLUSTERS, replace=False)]
    return X, init


def assert_matches_sklearn(ours, sk, dtype):
    rtol = 1e-6 if dtype == np.float64 else 1e-4
    labels = ours.labels_
    labels = labels.compute() if isinstance(labels, da.Array) else labels
    np.testing.assert_array_equal(labels, sk.labels_)
    np.testing.assert_allclose(
        ours.cluster_centers_,
        sk.cluster_centers_,
        rtol=rtol,
        atol=rtol * np.abs(sk.cluster_centers_).max(),
    )
    np.testing.assert_allclose(ours.inertia_, sk.inertia_, rtol=rtol)
    assert ours.n_iter_ == sk.n_iter_
    assert ours.cluster_centers_.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "kind,chunks", [("numpy", None), ("dask", 1000), ("dask", 337), ("dask", 3001), ("zarr", 500)]
)
def test_parity_with_sklearn(blobs, dtype, kind, chunks, tmp_path):
    X, init = blobs
    X = X.astype(dtype)
    sk = SkKMeans(N_CLUSTERS, init=init, n_init=1, algorithm="lloyd").fit(X)
    ours = KMeans(N_CLUSTERS, init=init).fit(as_input(X, kind, chunks, tmp_path))
    assert_matches_sklearn(ours, sk, dtype)
    assert isinstance(ours.labels_, np.ndarray if kind == "numpy" else da.Array)


def test_parity_on_every_scheduler(blobs, scheduler):
    X, init = blobs
    sk = SkKMeans(N_CLUSTERS, init=init, n_init=1).fit(X)
    ours = KMeans(N_CLUSTERS, init=init).fit(da.from_array(X, chunks=(700, 4)))
    assert_matches_sklearn(ours, sk, np.float64)


@pytest.mark.slow
def test_parity_on_process_cluster(blobs, processes):
    X, init = blobs
    X = X.astype(np.float32)
    sk = SkKMeans(N_CLUSTERS, init=init, n_init=1).fit(X)
    ours = KMeans(N_CLUSTERS, init=init).fit(X)
    assert_matches_sklearn(ours, sk, np.float32)


@pytest.mark.parametrize("kind", ["numpy", "dask"])
def test_parity_with_sample_weight(blobs, kind):
    X, init = blobs
    weights = np.random.default_rng(1).uniform(0.1, 3.0, len(X))
    weights[::7] = 0.0
    sk = SkKMeans(N_CLUSTERS, init=init, n_init=1).fit(X, sample_weight=weights)
    if kind == "dask":
        data, w = da.from_array(X, chunks=(500, 4)), da.from_array(weights, chunks=800)
    else:
        data, w = X, weights
    ours = KMeans(N_CLUSTERS, init=init).fit(data, sample_weight=w)
    assert_matches_sklearn(ours, sk, np.float64)
    np.testing.assert_allclose(
        ours.score(X, sample_weight=weights), sk.score(X, sample_weight=weights), rtol=1e-9
    )


def test_parity_with_empty_cluster(blobs):
    X, init = blobs
    init = init.copy()
    init[2] = 1e3  # far from every row: empty after the first assignment, then relocated
    sk = SkKMeans(N_CLUSTERS, init=init, n_init=1).fit(X)
    ours = KMeans(N_CLUSTERS, init=init).fit(da.from_array(X, chunks=(400, 4)))
    assert_matches_sklearn(ours, sk, np.float64)
    assert not np.allclose(ours.cluster_centers_[2], 1e3)


def test_tol_and_max_iter_semantics(blobs):
    X, init = blobs
    for tol, max_iter in [(1e-1, 300), (0.0, 3), (1e-4, 2)]:
        sk = SkKMeans(N_CLUSTERS, init=init, n_init=1, tol=tol, max_iter=max_iter).fit(X)
        ours = KMeans(N_CLUSTERS, init=init, tol=tol, max_iter=max_iter).fit(X)
        assert_matches_sklearn(ours, sk, np.float64)


def test_predict_transform_score_follow_inputs(blobs):
    X, init = blobs
    sk = SkKMeans(N_CLUSTERS, init=init, n_init=1).fit(X)
    ours = KMeans(N_CLUSTERS, init=init).fit(X)
    lazy = da.from_array(X, chunks=(1000, 4))
    np.testing.assert_array_equal(ours.predict(X), sk.predict(X))
    assert isinstance(ours.predict(lazy), da.Array)
    np.testing.assert_array_equal(ours.predict(lazy).compute(), sk.predict(X))
    np.testing.assert_allclose(ours.transform(X), sk.transform(X), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours.transform(lazy).compute(), sk.transform(X), atol=1e-9)
    np.testing.assert_allclose(ours.score(lazy), sk.score(X), rtol=1e-9)
    np.testing.assert_array_equal(
        clone(ours).fit_predict(X), SkKMeans(N_CLUSTERS, init=init, n_init=1).fit_predict(X)
    )
    np.testing.assert_allclose(clone(ours).fit_transform(X), sk.transform(X), atol=1e-9)


@pytest.mark.parametrize("init", ["k-means||", "k-means++", "random"])
def test_same_seed_same_centers_for_any_chunking(blobs, init, kmeans_parallel_at_any_size):
    X, _ = blobs
    fits = [
        KMeans(N_CLUSTERS, init=init, n_init=2, random_state=7, max_iter=5)
        .fit(da.from_array(X, chunks=(rows, 4)))
        .cluster_centers_
        for rows in (3001, 640, 97)
    ]
    np.testing.assert_allclose(fits[1], fits[0], rtol=1e-9)
    np.testing.assert_allclose(fits[2], fits[0], rtol=1e-9)
    other = KMeans(N_CLUSTERS, init=init, random_state=8, max_iter=1).fit(X).cluster_centers_
    first = KMeans(N_CLUSTERS, init=init, random_state=7, max_iter=1).fit(X).cluster_centers_
    assert not np.allclose(other, first)


def test_same_seed_same_centers_on_every_scheduler(blobs, scheduler):
    X, _ = blobs
    expected = KMeans(N_CLUSTERS, random_state=3, max_iter=4)
    with dask.config.set(scheduler="synchronous"):
        expected.fit(X)
    ours = KMeans(N_CLUSTERS, random_state=3, max_iter=4).fit(da.from_array(X, chunks=(500, 4)))
    np.testing.assert_allclose(ours.cluster_centers_, expected.cluster_centers_, rtol=1e-9)


def _initial_inertia(X, centers):
    return -KMeans(len(centers), init=centers, max_iter=1).fit(X).score(X)


@pytest.mark.parametrize("n_clusters", [5, 50])
def test_kmeans_parallel_initial_inertia_close_to_kmeans_plusplus(
    n_clusters, kmeans_parallel_at_any_size
):
    X, _ = make_blobs(20_000, 8, centers=n_clusters, random_state=n_clusters)
    ours, theirs = [], []
    for seed in range(4):
        ours.append(_initial_inertia(X, _init_of(KMeans(n_clusters, random_state=seed), X)))
        theirs.append(_initial_inertia(X, kmeans_plusplus(X, n_clusters, random_state=seed)[0]))
    assert np.mean(ours) <= 1.10 * np.mean(theirs)
    final = KMeans(n_clusters, random_state=0).fit(X).inertia_
    assert final <= 1.01 * SkKMeans(n_clusters, random_state=0).fit(X).inertia_


def _init_of(fitted, X):
    from bigclust import as_dask_array
    from bigclust._random import Key, generator, seed_from
    from bigclust.cluster._init import kmeans_parallel

    seed = int(generator(seed_from(fitted.random_state), Key.KMEANS_RUNS, 0).integers(2**62))
    return kmeans_parallel(as_dask_array(X), fitted.n_clusters, None, seed).centers


@pytest.mark.slow
def test_kmeans_parallel_quality_500_clusters():
    X, _ = make_blobs(50_000, 8, centers=500, cluster_std=0.5, random_state=0)
    X = X.astype(np.float32)
    ours = _initial_inertia(X, _init_of(KMeans(500, random_state=0), X))
    theirs = _initial_inertia(X, kmeans_plusplus(X, 500, random_state=0)[0])
    assert ours <= 1.10 * theirs


def test_kmeans_plusplus_greedy_quality():
    from bigclust import as_dask_array
    from bigclust.cluster._init import kmeans_plusplus_greedy

    X, _ = make_blobs(5_000, 4, centers=10, random_state=1)
    ours = [
        _initial_inertia(X, kmeans_plusplus_greedy(as_dask_array(X), 10, None, s).centers)
        for s in range(4)
    ]
    theirs = [_initial_inertia(X, kmeans_plusplus(X, 10, random_state=s)[0]) for s in range(4)]
    assert np.mean(ours) <= 1.10 * np.mean(theirs)


def _seeding(X, how="k-means++", seed=3, n_clusters=12, weights=None):
    from bigclust.cluster import _init

    if how == "k-means++":
        return _init.kmeans_plusplus_greedy(X, n_clusters, weights, seed)
    return _init.kmeans_parallel(X, n_clusters, weights, seed, seed_on_data=False)


@pytest.mark.parametrize("how", ["k-means++", "k-means||"])
@pytest.mark.parametrize("kind", ["numpy", "dask"])
def test_seeding_kept_distances_are_a_cache(blobs, kind, how, monkeypatch):
    """Greedy k-means++ and k-means|| keep each chunk's distances to the nearest center (or
    candidate) so far between their passes; a chunk that finds none (every pass here: a
    worker lost each time) folds every center again and the seeding is bitwise unchanged."""
    from bigclust import _chunk_state

    X, _ = blobs
    X = X.astype(np.float32)
    weights = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    if kind == "dask":
        X, weights = da.from_array(X, chunks=(700, 4)), da.from_array(weights, chunks=700)
    kept = _seeding(X, how, weights=weights)
    assert not _chunk_state.STORE  # forgotten at the end

    found = []
    take = _chunk_state.take

    def taking(run, start, lose=False):
        state = take(run, start)
        found.append(state is not None)
        return None if lose else state

    monkeypatch.setattr(_chunk_state, "take", taking)
    again = _seeding(X, how, weights=weights)
    n_chunks = 1 if kind == "numpy" else len(X.chunks[0])
    assert found.count(False) == n_chunks  # kept from the first step to the last
    monkeypatch.setattr(_chunk_state, "take", lambda run, start: taking(run, start, lose=True))
    lost = _seeding(X, how, weights=weights)
    np.testing.assert_array_equal(again.centers, kept.centers)
    np.testing.assert_array_equal(lost.centers, kept.centers)
    if how == "k-means++":
        np.testing.assert_array_equal(lost.rows, kept.rows)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["k-means++", "k-means||"])
def test_seeding_on_worker_processes(blobs, how, processes, process_client):
    """On worker processes each chunk's pass goes where its distances are kept: the seeding
    equals the threaded scheduler's, and nothing is left on the workers."""
    from bigclust import _chunk_state

    X, _ = blobs
    data = da.from_array(X, chunks=(500, 4))
    on_workers = _seeding(data, how)
    with dask.config.set(scheduler="threads"):
        threaded = _seeding(data, how)
    np.testing.assert_allclose(on_workers.centers, threaded.centers, rtol=1e-12)
    assert not any(process_client.run(lambda: len(_chunk_state.STORE)).values())


def test_n_init_keeps_lowest_inertia(blobs):
    X, _ = blobs
    single = [
        KMeans(N_CLUSTERS, init="random", n_init=1, random_state=s).fit(X).inertia_
        for s in range(3)
    ]
    best = KMeans(N_CLUSTERS, init="random", n_init=5, random_state=0).fit(X)
    assert best.inertia_ <= max(single)
    assert KMeans(N_CLUSTERS, init="random", random_state=0)._n_runs() == 10


def test_callable_init(blobs):
    X, init = blobs
    calls = []

    def my_init(data, n_clusters, random_state):
        calls.append(data.shape)
        return init

    ours = KMeans(N_CLUSTERS, init=my_init, n_init=1).fit(X)
    sk = SkKMeans(N_CLUSTERS, init=init, n_init=1).fit(X)
    assert calls == [X.shape]
    assert_matches_sklearn(ours, sk, np.float64)


def test_integer_input_becomes_float64():
    X = np.repeat(np.array([[0, 0], [10, 10], [0, 10]]), 5, axis=0)
    ours = KMeans(3, random_state=0).fit(X)
    assert ours.cluster_centers_.dtype == np.float64
    assert sorted(ours.cluster_centers_.tolist()) == [[0, 0], [0, 10], [10, 10]]
    assert ours.inertia_ == 0


def test_duplicate_points_warn():
    X = np.zeros((10, 2))
    X[5:] = 1
    with pytest.warns(ConvergenceWarning, match="distinct clusters"):
        KMeans(3, random_state=0).fit(X)


def test_few_distinct_counts_signed_zeros_as_one():
    from bigclust.cluster._init import warn_if_few_distinct

    with pytest.warns(ConvergenceWarning, match=r"distinct clusters \(2\)"):
        warn_if_few_distinct(np.array([[0.0, 1.0], [-0.0, 1.0], [2.0, 1.0]]), 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_few_distinct(np.array([[0.0, 1.0], [0.0, -1.0]], np.float32), 2)


# --- bad input ---------------------------------------------------------------------------


def test_more_clusters_than_samples():
    with pytest.raises(ValueError, match=r"n_samples=4 should be >= n_clusters=5"):
        KMeans(5).fit(np.zeros((4, 2)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_names_the_row(blobs, bad):
    X = blobs[0].copy()
    X[2345, 1] = bad
    with pytest.raises(NonFiniteInputError, match=r"row 2345 \(chunk of rows 2000-2499\)"):
        KMeans(N_CLUSTERS, random_state=0).fit(da.from_array(X, chunks=(500, 4)))
    with pytest.raises(ValueError, match="row 2345"):
        KMeans(N_CLUSTERS, init=blobs[1]).fit(X)


def test_n_features_mismatch_at_predict(blobs):
    ours = KMeans(N_CLUSTERS, init=blobs[1], max_iter=2).fit(blobs[0])
    with pytest.raises(ValueError, match="X has 3 features, but KMeans is expecting 4"):
        ours.predict(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="X has 3 features"):
        ours.transform(da.zeros((5, 3), chunks=2))


def test_bad_init(blobs):
    X, init = blobs
    with pytest.raises(ValueError, match=r"init has shape \(5, 4\); expected \(n_clusters=6"):
        KMeans(N_CLUSTERS, init=init[:5]).fit(X)
    valid = re.escape("unknown init 'kmeans'; valid: 'k-means||', 'k-means++', 'random'")
    with pytest.raises(ValueError, match=valid):
        KMeans(N_CLUSTERS, init="kmeans").fit(X)
    nan_init = init.copy()
    nan_init[0, 0] = np.nan
    with pytest.raises(ValueError, match="init contains NaN"):
        KMeans(N_CLUSTERS, init=nan_init).fit(X)


@pytest.mark.parametrize(
    "weights,match",
    [
        (-np.ones(3001), "negative"),
        (np.ones(3000), r"shape \(3000,\); expected \(3001,\)"),
        (np.ones((3001, 2)), "shape"),
        (np.full(3001, np.nan), "NaN"),
    ],
)
def test_bad_sample_weight(blobs, weights, match):
    X, init = blobs
    with pytest.raises(ValueError, match=match):
        KMeans(N_CLUSTERS, init=init).fit(X, sample_weight=weights)
    with pytest.raises(ValueError, match=match):
        lazy = da.from_array(weights, chunks=1000)
        KMeans(N_CLUSTERS, init=init).fit(da.from_array(X, chunks=(500, 4)), sample_weight=lazy)


@pytest.mark.parametrize(
    "params,match",
    [
        ({"n_clusters": 0}, "n_clusters=0"),
        ({"max_iter": 0}, "max_iter=0"),
        ({"tol": -1.0}, "tol=-1.0"),
        ({"n_init": 0}, "n_init=0"),
        ({"oversampling_factor": 0}, "oversampling_factor=0"),
        ({"init_max_iter": 0}, "init_max_iter=0"),
    ],
)
def test_bad_parameters(blobs, params, match):
    with pytest.raises(ValueError, match=match):
        KMeans(**params).fit(blobs[0])


def test_input_data_unchanged(blobs):
    X, init = blobs
    before = X.copy()
    KMeans(N_CLUSTERS, init=init).fit(X, sample_weight=np.ones(len(X)))
    np.testing.assert_array_equal(X, before)


def test_no_convergence_warning_spam(blobs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KMeans(N_CLUSTERS, random_state=0).fit(blobs[0])


@pytest.mark.parametrize("dtype,offset", [(np.float64, 1e6), (np.float32, 1e4), (np.float32, 1e5)])
@pytest.mark.parametrize("rows_per_chunk", [600, 10_000])
def test_data_far_from_origin(blobs, dtype, offset, rows_per_chunk):
    # ||c||^2 - 2 x.c cancels catastrophically here unless rows and centers are shifted
    # (scikit-learn subtracts the data mean); without the shift, float32 labels are noise.
    # The per-center sums are taken on the shifted rows too: float32 sums of thousands of
    # rows around 1e5 put the centers units off.
    X, init = blobs
    X, init = (X + offset).astype(dtype), (init + offset).astype(dtype)
    sk = SkKMeans(N_CLUSTERS, init=init, n_init=1).fit(X)
    ours = KMeans(N_CLUSTERS, init=init).fit(da.from_array(X, chunks=(rows_per_chunk, 4)))
    np.testing.assert_array_equal(ours.labels_.compute(), sk.labels_)
    np.testing.assert_allclose(
        ours.cluster_centers_, sk.cluster_centers_, rtol=1e-12 if dtype == np.float64 else 1e-6
    )
    np.testing.assert_allclose(
        ours.inertia_, sk.inertia_, rtol=1e-6 if dtype == np.float64 else 1e-3
    )
    assert ours.n_iter_ == sk.n_iter_
