"""MiniBatchKMeans: parity with scikit-learn's partial_fit, streaming fit, bad input, API."""

from __future__ import annotations

import copy
import re
import warnings

import dask.array as da
import numpy as np
import pytest
import zarr
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.cluster import MiniBatchKMeans as SkMiniBatchKMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from bigclust import KMeans, MiniBatchKMeans
from bigclust.cluster import _minibatch
from bigclust.cluster import _minibatch_kernels as mbk
from bigclust.driver import NonFiniteInputError


def _blobs(n=3000, d=5, k=6, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10, 10, (k, d))
    labels = rng.integers(0, k, n)
    return (centers[labels] + rng.standard_normal((n, d))).astype(dtype)


def _batches(n, seed=1):
    """Batch boundaries of uneven sizes, so the reassignment schedule is exercised."""
    sizes = np.random.default_rng(seed).integers(50, 400, 40)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    bounds = bounds[bounds < n]
    return list(zip(bounds, [*bounds[1:], n], strict=True))


# --- partial_fit parity -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "rtol"), [(np.float64, 1e-10), (np.float32, 1e-5)], ids=["float64", "float32"]
)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_partial_fit_parity_every_step(dtype, rtol, weighted):
    X = _blobs(dtype=dtype)
    w = np.random.default_rng(2).uniform(0.2, 3, len(X)) if weighted else None
    init = X[:6].copy()
    kwargs = dict(n_clusters=6, init=init, n_init=1, reassignment_ratio=0.0, random_state=0)
    ours, theirs = MiniBatchKMeans(**kwargs), SkMiniBatchKMeans(**kwargs)
    for lo, hi in _batches(len(X)):
        sw = None if w is None else w[lo:hi]
        ours.partial_fit(X[lo:hi], sample_weight=sw)
        theirs.partial_fit(X[lo:hi], sample_weight=sw)
        assert ours.cluster_centers_.dtype == dtype
        assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=rtol, atol=0)
        assert_allclose(ours._counts, theirs._counts, rtol=1e-12 if dtype == np.float64 else 1e-6)
        if not weighted:
            assert_array_equal(ours._counts, theirs._counts)
        assert_array_equal(ours.labels_, theirs.labels_)
        assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=rtol)
        assert ours.n_steps_ == theirs.n_steps_
    # The centers moved: the test compared real updates, not the initial centers.
    assert np.abs(ours.cluster_centers_ - init).max() > 0.1


def _step_with_shadow(est, X):
    """Step ``est`` on X, and a copy of it without reassignment: the centers that differ
    between the two are the ones the step reassigned."""
    shadow = copy.deepcopy(est)
    shadow.set_params(reassignment_ratio=0.0)
    est.partial_fit(X)
    shadow.partial_fit(X)
    moved = ~np.all(est.cluster_centers_ == shadow.cluster_centers_, axis=1)
    return moved, shadow


def test_reassignment_rule_matches_scikit_learn():
    """The same centers get reassigned (the replacement rows are random and may differ), and
    the running weights, which do not depend on that draw, are equal."""
    X = _blobs(n=4000, k=4)
    # Four centers on the data, four far away: those get no rows and must be reassigned.
    init = np.vstack([X[:4], np.full((4, X.shape[1]), 500.0) + np.arange(4)[:, None]])
    kwargs = dict(n_clusters=8, init=init, n_init=1, reassignment_ratio=0.2, random_state=0)
    ours, theirs = MiniBatchKMeans(**kwargs), SkMiniBatchKMeans(**kwargs)
    n_reassigned = 0
    for lo, hi in _batches(len(X), seed=3)[:12]:
        if hasattr(theirs, "cluster_centers_"):  # start both steps from the same state
            ours.cluster_centers_ = theirs.cluster_centers_.copy()
            ours._counts = theirs._counts.astype(np.float64)
            ours._n_since_last_reassign = theirs._n_since_last_reassign
        ours_moved, _ = _step_with_shadow(ours, X[lo:hi])
        theirs_moved, _ = _step_with_shadow(theirs, X[lo:hi])
        assert_array_equal(ours_moved, theirs_moved)
        assert_array_equal(ours._counts, theirs._counts)
        assert ours._n_since_last_reassign == theirs._n_since_last_reassign
        kept = ~ours_moved
        assert_allclose(ours.cluster_centers_[kept], theirs.cluster_centers_[kept], rtol=1e-10)
        # Reassigned centers sit on rows of the batch.
        for c in ours.cluster_centers_[ours_moved]:
            assert (np.abs(X[lo:hi] - c).max(axis=1) == 0).any()
        n_reassigned += int(ours_moved.sum())
    assert n_reassigned >= 4  # the far centers were reassigned at least once


def test_reassign_mask_caps_at_half_the_batch():
    counts = np.array([0.0, 1.0, 2.0, 3.0, 100.0, 5.0])
    # Below 0.5 * 100 = 50: five centers, but a batch of 6 rows allows at most 3, the
    # lowest weights first.
    assert_array_equal(mbk.reassign_mask(counts, 0.5, 6), [1, 1, 1, 0, 0, 0])
    assert_array_equal(mbk.reassign_mask(counts, 0.5, 100), [1, 1, 1, 1, 0, 1])
    assert_array_equal(mbk.reassign_mask(counts, 0.011, 100), [1, 1, 0, 0, 0, 0])


def test_partial_fit_first_call_uses_explicit_init():
    X = _blobs()
    init = X[100:106] + 0.5
    est = MiniBatchKMeans(6, init=init, reassignment_ratio=0.0).partial_fit(X[:200])
    # One step from ``init``: each center is the mean of itself (weight 0) and its rows.
    labels = np.argmin(((X[:200, None, :] - init[None]) ** 2).sum(-1), axis=1)
    for j in range(6):
        if (labels == j).any():
            assert_allclose(est.cluster_centers_[j], X[:200][labels == j].mean(0), rtol=1e-12)
        else:
            assert_array_equal(est.cluster_centers_[j], init[j])
    assert_array_equal(est._counts, np.bincount(labels, minlength=6))


# --- bad input between partial_fit calls ------------------------------------------------


def _nan_at(X, row):
    X = X.copy()
    X[row, 1] = np.nan
    return X


@pytest.mark.parametrize(
    ("make_batch", "error", "match"),
    [
        (lambda X: X[:, :4], ValueError, "X has 4 features, but MiniBatchKMeans is expecting 5"),
        (lambda X: X.astype(np.float32), TypeError, "dtype float32 .* fitted on float64"),
        (lambda X: _nan_at(X, 17), NonFiniteInputError, "row 17"),
        (lambda X: np.where(np.arange(len(X))[:, None] == 3, np.inf, X), ValueError, "row 3"),
        (lambda X: da.from_array(_nan_at(X, 250), chunks=100), NonFiniteInputError, "row 250"),
    ],
    ids=["n_features", "dtype", "nan", "inf", "nan-in-third-chunk"],
)
def test_bad_partial_fit_leaves_state_unchanged(make_batch, error, match):
    X = _blobs()
    est = MiniBatchKMeans(6, random_state=0, n_init=1)
    est.partial_fit(X[:300]).partial_fit(X[300:600])
    before = (est.cluster_centers_.copy(), est._counts.copy(), est.n_steps_, est.inertia_)
    with pytest.raises(error, match=match):
        est.partial_fit(make_batch(X[600:900]))
    assert_array_equal(est.cluster_centers_, before[0])
    assert_array_equal(est._counts, before[1])
    assert (est.n_steps_, est.inertia_) == before[2:]
    est.partial_fit(X[600:900])  # still usable
    assert est.n_steps_ == before[2] + 1


def test_bad_first_partial_fit_leaves_it_unfitted():
    est = MiniBatchKMeans(3, random_state=0)
    with pytest.raises(NonFiniteInputError, match="row 5"):
        est.partial_fit(_nan_at(_blobs(n=50), 5))
    assert not hasattr(est, "cluster_centers_")
    with pytest.raises(ValueError, match="n_samples=2 should be >= n_clusters=3"):
        est.partial_fit(np.zeros((2, 5)))


def test_fit_names_nonfinite_row(scheduler):
    X = _nan_at(_blobs(n=2000), 1234)
    with pytest.raises(NonFiniteInputError, match="row 1234"):
        MiniBatchKMeans(4, init=X[:4] * 0 + np.arange(4)[:, None], random_state=0).fit(
            da.from_array(X, chunks=500)
        )


# --- partial_fit on chunked input -----------------------------------------------------


def test_partial_fit_on_dask_steps_once_per_chunk(scheduler):
    X = _blobs()
    init = X[:6].copy()
    kwargs = dict(n_clusters=6, init=init, random_state=0, reassignment_ratio=0.05)
    chunked = MiniBatchKMeans(**kwargs).partial_fit(X[:500])
    chunked.partial_fit(da.from_array(X[500:], chunks=(700, 5)))
    loop = MiniBatchKMeans(**kwargs).partial_fit(X[:500])
    for lo in range(500, len(X), 700):
        loop.partial_fit(X[lo : lo + 700])
    assert chunked.n_steps_ == loop.n_steps_ == 1 + 4
    assert_allclose(chunked.cluster_centers_, loop.cluster_centers_, rtol=1e-12)
    assert_array_equal(chunked._counts, loop._counts)
    assert isinstance(chunked.labels_, da.Array)
    assert_array_equal(chunked.labels_.compute(), chunked.predict(X[500:]))


def test_dask_ml_incremental():
    dask_ml_wrappers = pytest.importorskip("dask_ml.wrappers")
    X = _blobs()
    init = X[:6].copy()
    inc = dask_ml_wrappers.Incremental(
        MiniBatchKMeans(6, init=init, random_state=0), shuffle_blocks=False
    )
    inc.fit(da.from_array(X, chunks=(500, 5)))
    loop = MiniBatchKMeans(6, init=init, random_state=0)
    for lo in range(0, len(X), 500):
        loop.partial_fit(X[lo : lo + 500])
    assert inc.estimator_.n_steps_ == 6
    assert_allclose(inc.estimator_.cluster_centers_, loop.cluster_centers_, rtol=1e-12)
    assert_array_equal(inc.predict(da.from_array(X, chunks=1000)).compute(), loop.predict(X))


# --- fit --------------------------------------------------------------------------------


@pytest.fixture
def small_segments(monkeypatch):
    """Segments of 700 rows of 5 float64 (28 000 bytes): several segments per epoch, batches
    that span segments."""
    monkeypatch.setattr(_minibatch, "SEGMENT_BYTES", 700 * 5 * 8)


def _fit(X, sample_weight=None, **kwargs):
    params = dict(n_clusters=6, batch_size=256, max_iter=3, random_state=7)
    params.update(kwargs)
    return MiniBatchKMeans(**params).fit(X, sample_weight=sample_weight)


def test_fit_same_batches_for_any_chunking(small_segments, tmp_path):
    X = _blobs(n=3001)
    store = zarr.create_array(tmp_path / "x.zarr", shape=X.shape, chunks=(333, 5), dtype=X.dtype)
    store[:] = X
    reference = _fit(X, max_no_improvement=None)
    assert reference.n_steps_ == 3 * 3001 // 256
    for data in (
        da.from_array(X, chunks=(1000, 5)),
        da.from_array(X, chunks=(411, 5)),
        store,
        str(tmp_path / "x.zarr"),
    ):
        other = _fit(data, max_no_improvement=None)
        assert other.n_steps_ == reference.n_steps_
        assert_allclose(other.cluster_centers_, reference.cluster_centers_, rtol=1e-12)
        assert other.inertia_ == pytest.approx(reference.inertia_, rel=1e-12)
        assert_array_equal(np.asarray(other.labels_), reference.labels_)
    # A different seed gives different batches.
    assert not np.allclose(_fit(X, random_state=8).cluster_centers_, reference.cluster_centers_)


@pytest.mark.parametrize(
    ("dtype", "rtol"), [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["float64", "float32"]
)
@pytest.mark.parametrize(
    "options",
    [
        dict(max_no_improvement=None),  # every step, reassignments included
        dict(max_no_improvement=2, tol=0.0),  # stops on the inertia
        dict(max_no_improvement=None, tol=1e-3),  # stops on the centers' shift
        dict(max_no_improvement=None, weighted=True, shifted=True),
    ],
    ids=["steps", "no-improvement", "tol", "weighted-far"],
)
def test_compiled_loop_makes_numpys_steps(small_segments, monkeypatch, dtype, rtol, options):
    """The compiled loop of steps (segments of many batches) gives the steps of the step by
    step path: the same number, the same stopping rule, the same centers to rounding."""
    from bigclust.cluster import _fused
    from bigclust.cluster import _kernels as kern

    options = dict(options)
    X = _blobs(n=3001, dtype=dtype)
    if options.pop("shifted", False):
        X = X + dtype(1e4)  # far from the origin: the steps work around a shift
    w = np.random.default_rng(3).uniform(0.5, 2, len(X)) if options.pop("weighted", False) else None
    monkeypatch.setattr(kern, "USE_COMPILED", True)
    init = X[:6].copy()
    init[5] = X.max(axis=0) * 10  # a center no row is near: its reassignment is due at once
    params = dict(batch_size=64, max_iter=4, init=init, reassignment_ratio=0.2, **options)
    loops = []
    real = _fused.fit_steps

    def counted(*args):
        loops.append(real(*args))
        return loops[-1]

    monkeypatch.setattr(_fused, "fit_steps", counted)
    fast = _fit(X, sample_weight=w, **params)
    made = sum(done for done, _ in loops)
    assert made > fast.n_steps_ // 2  # most steps ran in the loop
    monkeypatch.setattr(_fused, "fit_steps", lambda *args: (0, _fused.LEFT_TO_NUMPY))
    steps = _fit(X, sample_weight=w, **params)
    assert fast.n_steps_ == steps.n_steps_
    if options.get("max_no_improvement") or options.get("tol"):
        assert fast.n_steps_ < 4 * 3001 // 64  # it stopped early
    assert fast.cluster_centers_.dtype == dtype
    assert_allclose(fast.cluster_centers_, steps.cluster_centers_, rtol=rtol)
    # float32 centers that differ in their last bits move the inertia of rows far from
    # the origin by more.
    assert fast.inertia_ == pytest.approx(steps.inertia_, rel=rtol if dtype == np.float64 else 1e-4)
    assert_array_equal(fast.labels_, steps.labels_)


def test_compiled_loop_names_nonfinite_row(small_segments, monkeypatch):
    from bigclust.cluster import _kernels as kern

    monkeypatch.setattr(kern, "USE_COMPILED", True)
    X = _nan_at(_blobs(n=3001), 2345)
    with pytest.raises(NonFiniteInputError, match="row 2345"):
        _fit(X, batch_size=64, max_no_improvement=None)


def _documented_batches(n, segment, batch_size, seed, epochs):
    """The batches fit promises (see MiniBatchKMeans): per epoch, the segments in a random
    order, the rows of each in a random order, cut into consecutive runs of batch_size."""
    from bigclust import _random

    order = []
    n_segments = -(-n // segment)
    for epoch in range(epochs):
        for s in _random.generator(seed, mbk.KEY_SEGMENT_ORDER, epoch).permutation(n_segments):
            lo, hi = int(s) * segment, min(n, (int(s) + 1) * segment)
            rows = _random.generator(seed, mbk.KEY_ROW_ORDER, epoch, int(s)).permutation(hi - lo)
            order.append(lo + rows)
    order = np.concatenate(order)
    return [
        order[i : i + batch_size]
        for i in range(0, n * epochs // batch_size * batch_size, batch_size)
    ]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_is_scikit_learns_steps_on_the_documented_batches(small_segments, dtype):
    """fit = scikit-learn's partial_fit over the documented batches, including batches that
    span two segments and two epochs."""
    X = _blobs(n=3001, dtype=dtype)
    init = X[:6].copy()
    kwargs = dict(n_clusters=6, init=init, reassignment_ratio=0.0, max_no_improvement=None)
    ours = MiniBatchKMeans(batch_size=256, max_iter=2, random_state=5, **kwargs).fit(
        da.from_array(X, chunks=(1000, 5))
    )
    theirs = SkMiniBatchKMeans(batch_size=256, n_init=1, random_state=0, **kwargs)
    segment = _minibatch.SEGMENT_BYTES // (5 * X.itemsize)  # 700 rows of float64
    for rows in _documented_batches(len(X), segment, 256, seed=5, epochs=2):
        theirs.partial_fit(X[rows])
    assert ours.n_steps_ == theirs.n_steps_ == 2 * 3001 // 256
    assert_allclose(
        ours.cluster_centers_, theirs.cluster_centers_, rtol=1e-10 if dtype == np.float64 else 1e-5
    )
    assert_array_equal(ours._counts, theirs._counts)


def test_fit_same_result_on_every_scheduler(scheduler, small_segments):
    X = _blobs(n=2500)
    reference = _fit(X)
    other = _fit(da.from_array(X, chunks=(600, 5)))
    assert_allclose(other.cluster_centers_, reference.cluster_centers_, rtol=1e-12)
    assert other.inertia_ == pytest.approx(reference.inertia_, rel=1e-12)
    assert other.n_steps_ == reference.n_steps_


def test_fit_stops_early_on_every_scheduler(scheduler, small_segments):
    """On a cluster the folds of the next segments are already queued when a fit converges:
    they must leave the result alone (and be cancelled)."""
    X = _blobs(n=3000)
    reference = _fit(X, max_no_improvement=3, max_iter=5)
    other = _fit(da.from_array(X, chunks=(600, 5)), max_no_improvement=3, max_iter=5)
    assert 2 < other.n_steps_ == reference.n_steps_ < 5 * 3000 // 256
    assert_allclose(other.cluster_centers_, reference.cluster_centers_, rtol=1e-12)


def test_fit_on_worker_processes(processes, small_segments):
    X = _blobs(n=2500)
    reference = _fit(X)
    other = _fit(da.from_array(X, chunks=(600, 5)))
    assert_allclose(other.cluster_centers_, reference.cluster_centers_, rtol=1e-12)
    part = MiniBatchKMeans(6, init=X[:6], random_state=0)
    part.partial_fit(da.from_array(X, chunks=(600, 5)))
    assert part.n_steps_ == 5


def test_fit_every_row_once_per_epoch(small_segments):
    """One epoch with reassignment off and no early stop: the running weights count every row
    exactly once (the batches partition the rows)."""
    X = _blobs(n=2048)
    est = _fit(X, max_iter=1, max_no_improvement=None, reassignment_ratio=0.0)
    assert est.n_steps_ == 2048 // 256
    assert est._counts.sum() == 2048


def test_fit_quality_close_to_kmeans():
    X = _blobs(n=20000, d=8, k=10, seed=4)
    full = KMeans(10, random_state=0).fit(X)
    mini = MiniBatchKMeans(10, random_state=0, batch_size=512, max_iter=1).fit(X)
    assert mini.n_iter_ == 1
    assert mini.inertia_ <= 1.02 * full.inertia_
    assert mini.inertia_ == pytest.approx(-mini.score(X), rel=1e-9)


@pytest.mark.parametrize("offset", [1e5, -3e5])
def test_data_far_from_the_origin(offset):
    """float32 rows around 1e5: distances through ||x||^2 - 2 x.c + ||c||^2 lose every digit
    there (scikit-learn's MiniBatchKMeans finds nothing: adjusted Rand index 0). The steps
    run on rows and centers shifted to the origin, so fit and partial_fit find the clusters
    as on the same data at the origin."""
    X = _blobs(n=20000, d=5, k=6, seed=3, dtype=np.float32)
    truth = MiniBatchKMeans(6, random_state=0, max_iter=2, batch_size=512).fit(X)
    far = X + np.float32(offset)
    fitted = MiniBatchKMeans(6, random_state=0, max_iter=2, batch_size=512).fit(far)
    assert adjusted_rand_score(truth.labels_, fitted.labels_) == 1.0
    # The clusters may come numbered otherwise: the rows, rounded to float32 far out, differ
    # by up to 0.016 from the rows at the origin, enough to change a k-means++ pick between
    # two candidates of nearly equal potential.
    same = [np.bincount(truth.labels_[fitted.labels_ == j]).argmax() for j in range(6)]
    assert sorted(same) == list(range(6))
    assert_allclose(
        fitted.cluster_centers_ - np.float32(offset), truth.cluster_centers_[same], atol=0.05
    )
    assert fitted.inertia_ == pytest.approx(truth.inertia_, rel=0.02)

    near_stream = MiniBatchKMeans(6, init=truth.cluster_centers_, random_state=0)
    far_stream = MiniBatchKMeans(6, init=truth.cluster_centers_ + np.float32(offset))
    for lo in range(0, len(far), 1000):
        near_stream.partial_fit(X[lo : lo + 1000])
        far_stream.partial_fit(far[lo : lo + 1000])
    assert far_stream._shift is not None
    assert_array_equal(far_stream.labels_, near_stream.labels_)
    assert_allclose(
        far_stream.cluster_centers_ - np.float32(offset), near_stream.cluster_centers_, atol=0.05
    )
    assert adjusted_rand_score(truth.labels_, far_stream.predict(far)) == 1.0


def test_early_stopping_rules(small_segments):
    X = _blobs(n=3000)
    # max_no_improvement=0: the smoothed inertia starts at step 2, which stops at once.
    assert _fit(X, max_no_improvement=0).n_steps_ == 2
    unlimited = _fit(X, max_no_improvement=None, max_iter=5)
    assert unlimited.n_steps_ == 5 * 3000 // 256
    assert unlimited.n_iter_ == 5
    patient = _fit(X, max_no_improvement=3, max_iter=5)
    assert 2 < patient.n_steps_ < unlimited.n_steps_
    # tol: a huge tolerance stops at the first step where it is checked (step 2).
    assert _fit(X, tol=1e6, max_no_improvement=None).n_steps_ == 2
    assert _fit(X, tol=1e-12, max_no_improvement=None).n_steps_ == 3 * 3000 // 256


def test_compute_labels_false_estimates_inertia():
    X = _blobs(n=3000)
    est = _fit(X, compute_labels=False)
    assert not hasattr(est, "labels_")
    exact = -est.score(X)
    assert 0.5 * exact < est.inertia_ < 2 * exact


def test_fit_sample_weight_zero_rows_have_no_influence():
    X = _blobs(n=3000)
    X_out = np.vstack([X, np.full((300, X.shape[1]), 1e4)])
    w = np.r_[np.ones(3000), np.zeros(300)]
    est = MiniBatchKMeans(6, init=X[:6], reassignment_ratio=0.0, batch_size=256, random_state=0)
    est.fit(X_out, sample_weight=w)
    assert np.abs(est.cluster_centers_).max() < 100
    assert est.inertia_ == pytest.approx(-est.score(X_out, sample_weight=w), rel=1e-9)


@pytest.mark.parametrize("init", ["k-means||", "k-means++", "random"])
def test_inits_and_n_init(init):
    X = _blobs(n=3000, k=5)
    est = MiniBatchKMeans(5, init=init, random_state=0, batch_size=300, max_iter=2).fit(X)
    again = MiniBatchKMeans(5, init=init, random_state=0, batch_size=300, max_iter=2).fit(X)
    assert_array_equal(est.cluster_centers_, again.cluster_centers_)
    full = KMeans(5, random_state=0).fit(X)
    assert est.inertia_ <= 1.05 * full.inertia_


# --- outputs follow inputs, API ---------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outputs_follow_inputs(dtype, tmp_path):
    X = _blobs(n=1200, dtype=dtype)
    est = MiniBatchKMeans(4, random_state=0, batch_size=200).fit(X)
    assert isinstance(est.labels_, np.ndarray) and est.labels_.dtype == np.int32
    assert est.cluster_centers_.dtype == dtype
    assert isinstance(est.predict(X), np.ndarray)
    assert isinstance(est.transform(X), np.ndarray) and est.transform(X).dtype == dtype
    path = str(tmp_path / "x.zarr")
    zarr.create_array(path, shape=X.shape, chunks=(500, 5), dtype=dtype)[:] = X
    lazy = MiniBatchKMeans(4, random_state=0, batch_size=200).fit(path)
    assert isinstance(lazy.labels_, da.Array)
    assert isinstance(lazy.predict(path), da.Array)
    assert isinstance(lazy.transform(da.from_array(X)), da.Array)
    assert_array_equal(lazy.labels_.compute(), est.labels_)
    assert_array_equal(lazy.cluster_centers_, est.cluster_centers_)


def test_parameter_errors():
    X = _blobs(n=100)
    with pytest.raises(ValueError, match=re.escape("unknown init 'kmeans'; valid: 'k-means||'")):
        MiniBatchKMeans(3, init="kmeans").fit(X)
    with pytest.raises(ValueError, match="batch_size=0 should be an int >= 1"):
        MiniBatchKMeans(3, batch_size=0).fit(X)
    with pytest.raises(ValueError, match="reassignment_ratio=-1 should be a number >= 0"):
        MiniBatchKMeans(3, reassignment_ratio=-1).fit(X)
    with pytest.raises(ValueError, match=r"init has shape \(2, 5\); expected \(n_clusters=3"):
        MiniBatchKMeans(3, init=X[:2]).partial_fit(X)
    with pytest.warns(RuntimeWarning, match="performing only one init"):
        MiniBatchKMeans(3, init=X[:3], n_init=3).fit(X)


# Checks we expect to fail, with the reason a user would accept.
EXPECTED_FAILED = {
    # Batches are runs of a row order keyed by row position (so results never depend on the
    # chunking); repeating a row changes the order of every later row. Weighting equals
    # repeating for the same batches: test_partial_fit_parity_every_step[weighted].
    "check_sample_weight_equivalence_on_dense_data": "batch order is keyed by row position",
}


@parametrize_with_checks(
    [MiniBatchKMeans(n_clusters=3, random_state=0, batch_size=10, max_iter=20)],
    expected_failed_checks=lambda est: EXPECTED_FAILED,
)
def test_sklearn_api(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        check(estimator)
