"""Cluster representatives and label propagation: the notebook's answers on every input kind,
chunking and scheduler; ties that ignore the chunking; exact per-cluster percentiles."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr
from sklearn.cluster import KMeans as SkKMeans

import bigclust
from bigclust._percentile import grouped_percentile
from bigclust._selection import TopPerCluster
from bigclust.cluster import Representatives, propagate_labels, representatives
from bigclust.driver import NonFiniteInputError

K = 6


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(900, 4)) + rng.integers(0, K, 900)[:, None] * 2.5
    return X, SkKMeans(K, n_init=1, random_state=0).fit(X)


def _as_input(kind, X, tmp_path):
    if kind == "numpy":
        return X
    if kind == "dask-100":
        return da.from_array(X, chunks=(100, X.shape[1]))
    if kind == "dask-irregular":
        return da.from_array(X, chunks=((1, 400, 3, 96, X.shape[0] - 500), (X.shape[1],)))
    path = str(tmp_path / "X.zarr")
    z = zarr.create_array(path, shape=X.shape, dtype=X.dtype, chunks=(128, X.shape[1]))
    z[:] = X
    return path


KINDS = ["numpy", "dask-100", "dask-irregular", "zarr"]


def _nearest_members(X, centers, m):
    """NumPy reference: each cluster's m member rows nearest its center, ties by row."""
    labels = np.argmin(((X[:, None] - centers) ** 2).sum(-1), axis=1)
    distances = np.linalg.norm(X - centers[labels], axis=1)
    out = []
    for c in range(len(centers)):
        rows = np.flatnonzero(labels == c)
        out.append(rows[np.lexsort((rows, distances[rows]))][:m])
    return out, labels, distances


@pytest.mark.parametrize("kind", KINDS)
def test_nearest_rows_of_each_cluster(scheduler, kind, fitted, tmp_path):
    X, km = fitted
    data = _as_input(kind, X, tmp_path)
    # m=1: the notebook's representative rows, np.argmin(kmeans.transform(X), axis=0)
    one = representatives(data, km.cluster_centers_)
    np.testing.assert_array_equal(one.indices[:, 0], np.argmin(km.transform(X), axis=0))
    got = representatives(data, km.cluster_centers_, m=4)
    assert isinstance(got, Representatives)
    expected, _, distances = _nearest_members(X, km.cluster_centers_, 4)
    np.testing.assert_array_equal(got.indices, np.array(expected))
    np.testing.assert_allclose(got.distances, distances[got.indices], rtol=1e-14)
    np.testing.assert_array_equal(got.rows, X[got.indices])
    assert (np.diff(got.distances, axis=1) >= 0).all()  # nearest first


def test_ties_broken_by_global_row_whatever_the_chunking():
    """Copies of the same row at several positions: the lowest rows win, in any chunking."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    X[[250, 40, 170, 41]] = [0.01, 0.0]  # four rows at the same distance from the center
    centers = np.array([[0.0, 0.0], [50.0, 50.0]])
    for chunks in (300, 7, 64, (250, 50)):
        got = representatives(da.from_array(X, chunks=(chunks, 2)), centers, m=3)
        np.testing.assert_array_equal(got.indices[0], [40, 41, 170])


def test_top_per_cluster_combine_prefers_lower_rows_in_either_order():
    def part(rows):
        rows = np.asarray(rows)
        keys, cluster = np.ones(len(rows)), np.zeros(len(rows), np.intp)
        return TopPerCluster.select(np.array([2]), keys, rows, cluster, lambda k: rows[k, None])

    early, late = part([3, 5, 8]), part([1, 9])
    for merged in (early.combine(late), late.combine(early)):
        np.testing.assert_array_equal(np.sort(merged.index), [1, 3])


def test_clusters_with_fewer_rows_than_m_are_padded():
    X = np.array([[0.0], [1.0], [2.0], [10.0]], dtype=np.float32)
    got = representatives(X, np.array([[1.0], [10.0], [100.0]]), m=2)
    np.testing.assert_array_equal(got.indices, [[1, 0], [3, -1], [-1, -1]])
    assert got.distances[1, 1] == np.inf and np.isnan(got.rows[2]).all()
    assert got.rows.dtype == np.float32  # rows keep the data's dtype


def test_from_a_fitted_bigclust_estimator(fitted):
    X, _ = fitted
    km = bigclust.KMeans(K, n_init=1, random_state=0).fit(X)
    got = representatives(X, km)
    np.testing.assert_array_equal(got.indices[:, 0], np.argmin(km.transform(X), axis=0))
    labels = propagate_labels(X, km, np.arange(K) * 10)
    np.testing.assert_array_equal(labels, km.labels_ * 10)


def _notebook_propagation(X, km, y_representative, percentile):
    """Geron, Hands-On ML, ch. 9: propagate to the rows within a per-cluster percentile."""
    labels = km.predict(X)
    y = y_representative[labels].astype(np.int64)
    distances = np.linalg.norm(X - km.cluster_centers_[labels], axis=1)
    for c in range(len(km.cluster_centers_)):
        in_cluster = labels == c
        cutoff = np.percentile(distances[in_cluster], percentile)
        y[in_cluster & (distances > cutoff)] = -1
    return y


@pytest.mark.parametrize("kind", KINDS)
def test_propagation_as_the_notebook(scheduler, kind, fitted, tmp_path):
    X, km = fitted
    data = _as_input(kind, X, tmp_path)
    y_rep = np.array([7, 1, 3, 3, 0, 9])
    full = propagate_labels(data, km.cluster_centers_, y_rep)
    partial = propagate_labels(data, km.cluster_centers_, y_rep, percentile=20)
    assert isinstance(partial, np.ndarray if kind == "numpy" else da.Array)
    np.testing.assert_array_equal(np.asarray(full), y_rep[km.predict(X)])
    expected = _notebook_propagation(X, km, y_rep, 20)
    np.testing.assert_array_equal(np.asarray(partial), expected)
    assert 0.15 < np.mean(expected != -1) < 0.25


@pytest.mark.parametrize("q", [0, 5, 20, 50, 99.5, 100])
def test_grouped_percentile_is_exact_over_several_passes(q):
    """Small bins and gather limits force range, histogram and gather passes; ties, a
    constant group, a singleton and an empty group are all exact."""
    rng = np.random.default_rng(1)
    values = np.concatenate(
        [rng.normal(size=3000), np.full(400, 0.25), rng.integers(0, 4, 600).astype(float)]
    )
    groups = rng.integers(0, 3, len(values))
    groups[:500] = 3  # constant group (all 0.25 after the next line)
    values[:500] = 0.25
    groups[500] = 4  # singleton
    X = values[:, None]
    data = da.from_array(X, chunks=(333, 1))
    g = da.from_array(groups, chunks=500)
    got = grouped_percentile(_by_group, data, g, q=q, n_groups=6, bins=4, max_gather=40)
    for group in range(5):
        assert got[group] == np.percentile(values[groups == group], q), group
    assert np.isnan(got[5])


def _by_group(block, groups, params):
    return block[:, 0], groups


def test_bad_input(fitted):
    X, km = fitted
    with pytest.raises(ValueError, match="m=0"):
        representatives(X, km.cluster_centers_, m=0)
    with pytest.raises(ValueError, match="3 features"):
        representatives(X[:, :3], km.cluster_centers_)
    with pytest.raises(TypeError, match="no cluster_centers_"):
        representatives(X, bigclust.GaussianMixture(2).fit(X))
    with pytest.raises(ValueError, match=r"expected one label per cluster, \(6,\)"):
        propagate_labels(X, km, [1, 2])
    with pytest.raises(TypeError, match="expected integers"):
        propagate_labels(X, km, np.zeros(K))
    with pytest.raises(ValueError, match="percentile=120"):
        propagate_labels(X, km, np.arange(K), percentile=120)
    bad = X.copy()
    bad[321, 2] = np.inf
    lazy = da.from_array(bad, chunks=(100, 4))
    with pytest.raises(NonFiniteInputError, match="row 321"):
        representatives(lazy, km)
    with pytest.raises(NonFiniteInputError, match="row 321"):
        propagate_labels(lazy, km, np.arange(K), percentile=30)
    with pytest.raises(NonFiniteInputError, match="row 321"):
        propagate_labels(lazy, km, np.arange(K)).compute()
