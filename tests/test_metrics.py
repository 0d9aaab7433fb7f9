"""bigclust.metrics: scikit-learn's answers on every input kind, chunking and scheduler; the
sampled silhouette's standard error checked by repetition; clear errors."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import sklearn.metrics as skm
import zarr

import bigclust
from bigclust.driver import NonFiniteInputError
from bigclust.metrics import (
    _kernels,
    _silhouette,
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_samples,
    silhouette_score,
)
from bigclust.metrics._silhouette import allocate, stratified_mean


def _blobs(n=300, d=3, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(k, d))
    labels = rng.integers(0, k, n)
    X = centers[labels] + rng.normal(size=(n, d))
    labels[7] = k  # a singleton cluster: silhouette 0 by convention
    return X, labels


@pytest.fixture(scope="module")
def blobs():
    return _blobs()


def _as_input(kind, X, labels, tmp_path):
    """The same data as NumPy, Dask (two chunkings, lazy labels) or a Zarr path."""
    if kind == "numpy":
        return X, labels
    if kind == "dask-50":
        return da.from_array(X, chunks=(50, X.shape[1])), da.from_array(labels, chunks=60)
    if kind == "dask-irregular":
        chunks = ((1, 120, 2, 77, X.shape[0] - 200), (X.shape[1],))
        return da.from_array(X, chunks=chunks), labels
    path = str(tmp_path / "X.zarr")
    z = zarr.create_array(path, shape=X.shape, dtype=X.dtype, chunks=(64, X.shape[1]))
    z[:] = X
    return path, da.from_array(labels, chunks=100)


KINDS = ["numpy", "dask-50", "dask-irregular", "zarr"]


@pytest.mark.parametrize("kind", KINDS)
def test_equal_to_scikit_learn_on_every_input_and_scheduler(scheduler, kind, blobs, tmp_path):
    X, labels = blobs
    data, lab = _as_input(kind, X, labels, tmp_path)
    tol = {"rtol": 1e-10, "atol": 1e-12}
    np.testing.assert_allclose(
        calinski_harabasz_score(data, lab), skm.calinski_harabasz_score(X, labels), **tol
    )
    np.testing.assert_allclose(
        davies_bouldin_score(data, lab), skm.davies_bouldin_score(X, labels), **tol
    )
    for metric in ("sqeuclidean", "euclidean"):
        expected = skm.silhouette_samples(X, labels, metric=metric)
        got = silhouette_samples(data, lab, metric=metric)
        assert isinstance(got, np.ndarray if kind == "numpy" else da.Array)
        np.testing.assert_allclose(np.asarray(got), expected, **tol)
        np.testing.assert_allclose(
            silhouette_score(data, lab, metric=metric), expected.mean(), **tol
        )


def test_labels_of_any_type_and_lazy_labels_from_predict():
    X, labels = _blobs(n=200)
    names = np.array(["a", "bb", "c", "d", "e"])[labels]
    assert calinski_harabasz_score(X, names) == pytest.approx(
        skm.calinski_harabasz_score(X, labels), rel=1e-12
    )
    km = bigclust.KMeans(3, n_init=1, random_state=0).fit(X)
    lazy = km.predict(da.from_array(X, chunks=(40, 3)))
    assert isinstance(lazy, da.Array)
    expected = skm.silhouette_score(X, km.labels_, metric="sqeuclidean")
    assert silhouette_score(X, lazy, metric="sqeuclidean") == pytest.approx(expected, rel=1e-10)


def test_far_from_the_origin_keeps_its_digits():
    """Shifted by 1e7: equal to scikit-learn's scores of the centered data (which lose digits
    on the shifted data themselves)."""
    X, labels = _blobs(n=400)
    far = X + np.array([1e7, -3e7, 5e6])
    X0 = far - far.mean(axis=0)
    assert calinski_harabasz_score(far, labels) == pytest.approx(
        skm.calinski_harabasz_score(X0, labels), rel=1e-9
    )
    assert davies_bouldin_score(far, labels) == pytest.approx(
        skm.davies_bouldin_score(X0, labels), rel=1e-9
    )
    for metric in ("sqeuclidean", "euclidean"):
        np.testing.assert_allclose(
            silhouette_samples(far, labels, metric=metric),
            skm.silhouette_samples(X0, labels, metric=metric),
            rtol=1e-8,
            atol=1e-9,
        )


def test_euclidean_exact_in_several_blocks(monkeypatch, blobs):
    """Blocks of rows scored against all rows, each pass bringing back the next block."""
    monkeypatch.setattr(_silhouette, "MAX_QUERY_ROWS", 64)
    X, labels = blobs
    data = da.from_array(X, chunks=(45, 3))
    np.testing.assert_allclose(
        silhouette_samples(data, labels).compute(),
        skm.silhouette_samples(X, labels),
        rtol=1e-10,
        atol=1e-12,
    )


def test_float32_input(blobs):
    X, labels = blobs
    X32 = X.astype(np.float32)
    expected = skm.silhouette_samples(X32.astype(np.float64), labels)
    np.testing.assert_allclose(silhouette_samples(X32, labels), expected, rtol=1e-10, atol=1e-12)


# --- the sampled estimate -------------------------------------------------------------------


@pytest.fixture(scope="module")
def uneven():
    """Three clusters of very different sizes and silhouettes (a tight small one, a loose
    large one touching a medium one): a sample that over-represents the small cluster and
    is not re-weighted is biased."""
    rng = np.random.default_rng(5)
    sizes, centers, scales = [1500, 300, 40], [[0, 0], [3.5, 0], [20, 20]], [1.6, 1.0, 0.3]
    parts = zip(sizes, centers, scales, strict=True)
    X = np.concatenate([rng.normal(c, s, (n, 2)) for n, c, s in parts])
    labels = np.repeat(np.arange(3), sizes)
    return X, labels, skm.silhouette_score(X, labels)


def test_sampled_estimate_covers_the_full_score(uneven):
    """Over many seeds, the error is within 2 standard errors about 95% of the time, and the
    estimates average to the full score (unbiased)."""
    X, labels, full = uneven
    results = np.array(
        [
            silhouette_score(X, labels, sample_size=120, random_state=seed, return_std=True)
            for seed in range(200)
        ]
    )
    estimates, errors = results[:, 0], results[:, 1]
    z = np.abs(estimates - full) / errors
    assert 0.88 <= np.mean(z <= 2) <= 0.99, np.mean(z <= 2)
    assert np.mean(z <= 3) >= 0.97
    # The mean of 200 estimates is within 3 of its own standard errors of the truth.
    assert abs(estimates.mean() - full) <= 3 * errors.mean() / np.sqrt(len(estimates))


def test_sampled_rows_are_scored_against_all_rows(uneven):
    """The whole data as the sample gives the exact score with zero standard error."""
    X, labels, full = uneven
    score, std = silhouette_score(X, labels, sample_size=10**6, random_state=0, return_std=True)
    assert score == pytest.approx(full, rel=1e-10)
    assert std == 0.0


def test_sample_ignores_chunking_and_scheduler(scheduler, uneven):
    X, labels, _ = uneven
    expected = silhouette_score(X, labels, sample_size=90, random_state=3, return_std=True)
    for chunks in (100, 613):
        data = da.from_array(X, chunks=(chunks, 2))
        got = silhouette_score(data, labels, sample_size=90, random_state=3, return_std=True)
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    # sqeuclidean samples are scored from the cluster aggregates
    exact = skm.silhouette_score(X, labels, metric="sqeuclidean")
    score, std = silhouette_score(
        X, labels, metric="sqeuclidean", sample_size=300, random_state=0, return_std=True
    )
    assert 0 < std < 0.05 and abs(score - exact) < 4 * std


def test_allocation_represents_small_clusters():
    taken = allocate(np.array([10_000, 50, 3]), 300)
    assert taken.sum() == 300
    assert taken[2] == 3 and taken[1] >= 50  # every row of the tiny clusters (floor is 50)
    assert allocate(np.array([10, 10]), 1000).tolist() == [10, 10]


def test_stratified_mean_weights_and_finite_population_correction():
    values = np.array([1.0, 3.0, 10.0, 10.0])
    strata = np.array([0, 0, 1, 1])
    estimate, std = stratified_mean(values, strata, np.array([6, 2]))
    assert estimate == pytest.approx(0.75 * 2.0 + 0.25 * 10.0)
    # stratum 0: W^2 (1 - 2/6) s^2 / n = 0.5625 * (2/3) * 2 / 2; stratum 1 fully sampled
    assert std == pytest.approx(np.sqrt(0.5625 * (2 / 3) * 2 / 2))


# --- kernels --------------------------------------------------------------------------------


def test_cluster_moments_combine_equals_moments_of_concatenation(blobs):
    X, labels = blobs
    far = X + 1e6
    whole = _kernels.moments_chunk(far, labels, None, 0)
    parts = [
        _kernels.moments_chunk(far[lo : lo + 70], labels[lo : lo + 70], None, lo)
        for lo in range(0, len(X), 70)
    ]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.combine(part)
    np.testing.assert_array_equal(merged.classes, whole.classes)
    np.testing.assert_array_equal(merged.counts, np.bincount(labels))
    means = np.array([far[labels == c].mean(axis=0) for c in whole.classes])
    spreads = np.array(
        [((X[labels == c] - X[labels == c].mean(0)) ** 2).sum() for c in whole.classes]
    )
    np.testing.assert_allclose(merged.means, means, rtol=1e-15)
    np.testing.assert_allclose(merged.spreads, spreads, rtol=1e-9)
    np.testing.assert_allclose(whole.spreads, spreads, rtol=1e-9)


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "function",
    [calinski_harabasz_score, davies_bouldin_score, silhouette_score, silhouette_samples],
)
def test_errors_as_scikit_learn(function, blobs):
    X, labels = blobs
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        function(X, labels[:-1])
    with pytest.raises(ValueError, match="Number of labels is 1"):
        function(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match=f"Number of labels is {len(X)}"):
        function(X, np.arange(len(X)))
    with pytest.raises(ValueError, match="Number of labels is 1"):  # known after one pass
        function(da.from_array(X, chunks=(50, 3)), da.zeros(len(X), chunks=50, dtype=int))
    bad = X.copy()
    bad[123, 1] = np.nan
    with pytest.raises(NonFiniteInputError, match="row 123"):
        function(da.from_array(bad, chunks=(50, 3)), labels)


def test_parameter_errors(blobs, monkeypatch):
    X, labels = blobs
    with pytest.raises(ValueError, match="metric='cosine' is not supported"):
        silhouette_score(X, labels, metric="cosine")
    with pytest.raises(ValueError, match="sample_size=0"):
        silhouette_score(X, labels, sample_size=0)
    monkeypatch.setattr(_silhouette, "MAX_EXACT_ROWS", 100)
    with pytest.raises(ValueError, match="sample_size"):
        silhouette_score(X, labels)
    # the squared-Euclidean score and the sampled estimate have no size limit
    silhouette_score(X, labels, metric="sqeuclidean")
    silhouette_score(X, labels, sample_size=50, random_state=0)


def test_percentile_at_the_top_level():
    values = np.random.default_rng(0).normal(size=1000)
    lazy = da.from_array(values, chunks=99)
    assert bigclust.percentile(lazy, 7.5) == np.percentile(values, 7.5)
    assert bigclust.mixture.percentile is bigclust.percentile


@pytest.mark.slow
def test_on_worker_processes(processes, blobs):
    """Kernels, statistics and lazy outputs pickle to worker processes."""
    from bigclust.cluster import propagate_labels, representatives

    X, labels = blobs
    data = da.from_array(X, chunks=(50, 3))
    lazy_labels = da.from_array(labels, chunks=70)
    assert calinski_harabasz_score(data, lazy_labels) == pytest.approx(
        skm.calinski_harabasz_score(X, labels), rel=1e-10
    )
    np.testing.assert_allclose(
        silhouette_samples(data, lazy_labels, metric="sqeuclidean").compute(),
        skm.silhouette_samples(X, labels, metric="sqeuclidean"),
        rtol=1e-10,
        atol=1e-12,
    )
    local = silhouette_score(X, labels, sample_size=60, random_state=1, return_std=True)
    assert silhouette_score(data, labels, sample_size=60, random_state=1, return_std=True) == (
        pytest.approx(local, rel=1e-12)
    )
    centers = np.array([X[labels == c].mean(axis=0) for c in range(4)])
    reps = representatives(data, centers, m=2)
    assert reps.indices.shape == (4, 2) and (reps.indices >= 0).all()
    propagated = propagate_labels(data, centers, np.arange(4), percentile=50).compute()
    assert 0.4 < np.mean(propagated >= 0) < 0.6
