"""The estimator core: constraint tables, the input judged once, the init registry, the
per-row output rule, the best-of-runs rule, and the k-means|| steps a shortcut would skip."""

from __future__ import annotations

import numbers
import re

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from bigclust import GaussianMixture, KMeans, MiniBatchKMeans, _random
from bigclust._input import read_input
from bigclust._params import Interval, Options, check_param
from bigclust.cluster import _init, _reduce
from bigclust.cluster import _kernels as kern
from bigclust.driver import NonFiniteInputError, map_reduce, map_rows

ESTIMATORS = [
    lambda: KMeans(3, random_state=0, n_init=1),
    lambda: MiniBatchKMeans(3, random_state=0, batch_size=50),
    lambda: GaussianMixture(3, random_state=0),
]
IDS = ["KMeans", "MiniBatchKMeans", "GaussianMixture"]


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(600, 4, centers=3, random_state=0)
    return X


# -- constraint tables ---------------------------------------------------------------------


def test_interval_and_options():
    ints = Interval(numbers.Integral, 1, None)
    assert ints.accepts(1) and ints.accepts(np.int64(5))
    assert not ints.accepts(0) and not ints.accepts(True) and not ints.accepts(1.5)
    open_unit = Interval(numbers.Real, 0, 1, closed="neither")
    assert open_unit.accepts(0.5) and not open_unit.accepts(0) and not open_unit.accepts(1)
    assert not open_unit.accepts(float("nan"))
    names = Options("a", "b")
    assert names.accepts("a") and not names.accepts("c") and not names.accepts(np.array(["a"]))


def test_one_message_style_carrying_the_value():
    with pytest.raises(ValueError, match=re.escape("n_clusters=0 should be an int >= 1.")):
        check_param("n_clusters", 0, [Interval(numbers.Integral, 1, None)])
    with pytest.raises(ValueError, match=re.escape("unknown init 'x'; valid: 'a', 'b', None.")):
        check_param("init", "x", [Options("a", "b"), None])


@pytest.mark.parametrize(
    "make,name,value",
    [
        (KMeans, "n_clusters", 0),
        (KMeans, "oversampling_factor", 0.0),
        (KMeans, "n_init", True),
        (MiniBatchKMeans, "batch_size", 0),
        (MiniBatchKMeans, "reassignment_ratio", -1),
        (GaussianMixture, "n_components", 0),
        (GaussianMixture, "max_iter", -1),
        (GaussianMixture, "reg_covar", -1e-6),
    ],
)
def test_every_estimator_checks_its_table_before_reading_data(make, name, value):
    unreadable = da.from_delayed(_explode(), shape=(100, 4), dtype=np.float64)
    with pytest.raises(ValueError, match=re.escape(f"{name}={value!r} should be")):
        make(**{name: value}).fit(unreadable)


def _explode():
    import dask

    @dask.delayed
    def boom():
        raise AssertionError("the data were read")

    return boom()


@pytest.mark.parametrize(
    "make,name,valid",
    [
        (KMeans, "init", "'k-means||', 'k-means++', 'random', an array or a callable"),
        (GaussianMixture, "covariance_type", "'full', 'tied', 'diag', 'spherical'"),
        (GaussianMixture, "init_params", "'kmeans', 'k-means++', 'random', 'random_from_data'"),
    ],
)
def test_unknown_names_list_the_valid_ones(blobs, make, name, valid):
    with pytest.raises(ValueError, match=re.escape(f"unknown {name} 'nope'; valid: {valid}")):
        make(**{name: "nope"}).fit(blobs)


# -- the input judged once -------------------------------------------------------------------


@pytest.mark.parametrize("make", ESTIMATORS, ids=IDS)
def test_outputs_follow_inputs_one_rule(make, blobs, tmp_path):
    est = make().fit(blobs)
    path = tmp_path / "x.npy"
    np.save(path, blobs)
    memmap = np.load(path, mmap_mode="r")
    expected = est.predict(blobs)
    assert isinstance(expected, np.ndarray)
    got = est.predict(memmap)  # an in-memory kind: NumPy out, for every estimator
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, expected)
    lazy = est.predict(da.from_array(blobs, chunks=(150, 4)))
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), expected)
    assert lazy.dtype == expected.dtype
    # Label dtypes as scikit-learn's: int32 for K-Means, int64 for mixtures.
    wanted = np.int64 if isinstance(est, GaussianMixture) else np.int32
    assert expected.dtype == wanted


@pytest.mark.parametrize("make", ESTIMATORS, ids=IDS)
def test_feature_names_everywhere(make, blobs):
    frame = pd.DataFrame(blobs, columns=["a", "b", "c", "d"])
    est = make().fit(frame)
    np.testing.assert_array_equal(est.feature_names_in_, ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="Feature names"):
        est.predict(frame[["b", "a", "c", "d"]])
    est.fit(blobs)  # refit without names forgets them
    assert not hasattr(est, "feature_names_in_")
    with pytest.raises(ValueError, match=r"X has 3 features, but .* is expecting 4 features"):
        est.predict(blobs[:, :3])


@pytest.mark.parametrize("make", ESTIMATORS, ids=IDS)
def test_a_failed_fit_leaves_nothing_half_fitted(make, blobs):
    bad = blobs.copy()
    bad[321, 1] = np.nan
    est = make()
    with pytest.raises(ValueError, match="row 321"):
        est.fit(bad)
    fitted = [name for name in vars(est) if name.endswith("_") and not name.startswith("_")]
    assert fitted == []


def test_read_input_decides_once(blobs, tmp_path):
    assert read_input(blobs).numpy_out and read_input(blobs).in_memory is blobs
    assert not read_input(da.from_array(blobs)).numpy_out
    np.save(tmp_path / "x.npy", blobs)
    from_path = read_input(str(tmp_path / "x.npy"))
    assert not from_path.numpy_out and from_path.in_memory is None


# -- the engine's in-process paths ------------------------------------------------------------


def test_map_rows_in_process_equals_lazy(blobs):
    centers = blobs[:3]
    X = read_input(blobs).data
    lazy = map_rows(kern.labels_block, X, params=centers, dtype=np.int32)
    direct = map_rows(
        kern.labels_block, X, params=centers, dtype=np.int32, numpy_out=True, in_memory=blobs
    )
    np.testing.assert_array_equal(direct, lazy.compute())
    bad = blobs.copy()
    bad[77, 0] = np.inf
    with pytest.raises(NonFiniteInputError, match="row 77"):
        map_rows(
            kern.labels_block,
            read_input(bad).data,
            params=centers,
            dtype=np.int32,
            numpy_out=True,
            in_memory=bad,
        )


def test_map_reduce_on_an_in_memory_sample(blobs):
    params = kern.LloydParams(blobs[:3].astype(np.float64), with_inertia=True)
    sample = map_reduce(kern.lloyd_chunk, blobs, params=params)
    whole = map_reduce(
        kern.lloyd_chunk, da.from_array(blobs, chunks=(len(blobs), 4)), params=params
    )
    np.testing.assert_allclose(sample.sums, whole.sums, rtol=1e-12)
    assert sample.inertia == pytest.approx(whole.inertia, rel=1e-12)


# -- the registry and k-means|| --------------------------------------------------------------


def _captured_reduction(monkeypatch):
    seen = {}
    original = _init.reduce_candidates

    def spy(candidates, weights, n_clusters, seed):
        seen["candidates"], seen["weights"] = candidates, weights
        return original(candidates, weights, n_clusters, seed)

    monkeypatch.setattr(_init, "reduce_candidates", spy)
    return seen


def test_kmeans_parallel_weights_candidates_by_their_rows(monkeypatch, kmeans_parallel_at_any_size):
    # One dense blob and two sparse ones: a candidate in the dense blob must weigh far more.
    rng = np.random.default_rng(0)
    X = np.vstack(
        [rng.normal(0, 1, (20_000, 2)), rng.normal(50, 1, (50, 2)), rng.normal(-50, 1, (50, 2))]
    )
    seen = _captured_reduction(monkeypatch)
    _init.kmeans_parallel(da.from_array(X, chunks=(4000, 2)), 3, None, seed=1)
    assert seen["weights"].sum() == pytest.approx(len(X))
    assert seen["weights"].max() > 10
    weights = rng.uniform(0.5, 2.0, len(X))
    _init.kmeans_parallel(
        da.from_array(X, chunks=(4000, 2)), 3, da.from_array(weights, chunks=4000), seed=1
    )
    assert seen["weights"].sum() == pytest.approx(weights.sum())


def test_kmeans_parallel_candidates_grow_with_the_oversampling_factor(
    monkeypatch, kmeans_parallel_at_any_size
):
    X, _ = make_blobs(5000, 3, centers=20, random_state=0)
    seen = _captured_reduction(monkeypatch)
    counts = []
    for factor in (0.5, 2.0, 8.0):
        _init.kmeans_parallel(
            da.from_array(X, chunks=1000), 20, None, 3, oversampling_factor=factor
        )
        counts.append(len(seen["candidates"]))
    assert counts[0] < counts[1] < counts[2]


def _weighted_candidates(n_clusters, per_cluster=10, d=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-50, 50, (n_clusters, d))
    points = np.repeat(centers, per_cluster, axis=0) + rng.normal(
        0, 1, (n_clusters * per_cluster, d)
    )
    return points, rng.uniform(1, 500, len(points))


def _weighted_inertia(points, weights, centers):
    return ((points[:, None] - centers[None]) ** 2).sum(-1).min(axis=1) @ weights


@pytest.mark.parametrize("n_clusters", [2, 8, 40])
def test_reduction_matches_scikit_learns_weighted_kmeans(n_clusters):
    from sklearn.cluster import KMeans as SkKMeans

    points, weights = _weighted_candidates(n_clusters)
    for seed in range(3):
        ours = _reduce.reduce_candidates(points, weights, n_clusters, seed)
        theirs = SkKMeans(n_clusters, n_init=10, random_state=seed).fit(
            points, sample_weight=weights
        )
        assert ours.shape == (n_clusters, 3) and ours.dtype == np.float64
        assert _weighted_inertia(points, weights, ours) <= 1.001 * _weighted_inertia(
            points, weights, theirs.cluster_centers_
        )
        np.testing.assert_array_equal(
            ours, _reduce.reduce_candidates(points, weights, n_clusters, seed)
        )


def test_reduction_far_from_the_origin_and_in_groups_of_restarts(monkeypatch):
    points, weights = _weighted_candidates(8, seed=1)
    near = _reduce.reduce_candidates(points, weights, 8, 3)
    far = _reduce.reduce_candidates(points + 1e7, weights, 8, 3)
    np.testing.assert_allclose(far - 1e7, near, atol=1e-6)
    # Restarts advanced a few at a time (large k) find the same clustering.
    monkeypatch.setattr(_reduce, "GROUP_ELEMENTS", 3 * len(points) * 8)
    grouped = _reduce.reduce_candidates(points, weights, 8, 3)
    np.testing.assert_allclose(np.sort(grouped, axis=0), np.sort(near, axis=0), rtol=1e-12)


def test_reduction_relocates_an_empty_cluster():
    points, weights = _weighted_candidates(4, seed=2)
    x_sq = np.einsum("ij,ij->i", points, points)
    # Two restarts; in the second, two seeds coincide, so one cluster starts empty.
    seeds = np.stack([points[[0, 10, 20, 30]], points[[0, 0, 20, 30]]])
    centers, labels, inertia = _reduce._lloyd(points, x_sq, weights, seeds, tol=0.0)
    for r in range(2):
        assert len(np.unique(labels[r])) == 4
        assert len(np.unique(centers[r], axis=0)) == 4
    assert inertia[1] == pytest.approx(inertia[0], rel=1e-9)


def test_same_clustering_ignores_the_numbering():
    assert _reduce._same_clustering(np.array([0, 0, 1, 2]), np.array([2, 2, 0, 1]))
    assert not _reduce._same_clustering(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]))
    assert not _reduce._same_clustering(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 2]))


def test_registry_runs_on_a_sample_and_on_dask_alike(blobs):
    lazy = da.from_array(blobs, chunks=(len(blobs), 4))
    for name in _init.INITS:
        on_sample = _init.initial_centers(name, blobs, 3, None, 5)
        on_dask = _init.initial_centers(name, lazy, 3, None, 5)
        np.testing.assert_allclose(on_sample, on_dask, rtol=1e-12)


def test_best_run_ignores_rounding_and_keeps_the_earliest():
    assert _random.better(1.0, None)
    assert not _random.better(1.0 + 1e-13, 1.0)  # a tie: the earlier run stays
    assert not _random.better(1.0 - 1e-13, 1.0, larger=False)
    assert _random.better(1.1, 1.0) and _random.better(0.9, 1.0, larger=False)
    assert _random.better(-5.0, -np.inf)


def test_stream_keys_are_unique():
    values = [key.value for key in _random.Key]
    assert len(values) == len(set(values))
