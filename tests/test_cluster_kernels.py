"""Cluster kernels on NumPy alone: Nearest, OneHot, the seeding statistics' combine, the
compiled passes against the NumPy reference, and the exactness of the reported inertia."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from bigclust import KMeans, MiniBatchKMeans
from bigclust._errors import NonFiniteRow
from bigclust.cluster import _fused
from bigclust.cluster import _kernels as kern
from bigclust.cluster import _minibatch_kernels as mbk

DTYPES = [np.float64, np.float32]


def brute_squared(X, centers):
    diff = X.astype(np.float64)[:, None, :] - np.asarray(centers, np.float64)[None, :, :]
    return (diff**2).sum(axis=2)


@pytest.fixture
def blobs():
    rng = np.random.default_rng(0)
    centers = rng.uniform(-10, 10, (7, 5))
    X = centers[rng.integers(0, 7, 3000)] + rng.standard_normal((3000, 5))
    return X, centers, rng.uniform(0.1, 2.0, 3000)


@pytest.fixture
def rows_on_centers():
    """float32 rows that lie exactly on their (float32) centers, where the expanded
    ``||x||^2 - 2 x.c + ||c||^2`` comes out negative for some rows and positive for others."""
    rng = np.random.default_rng(0)
    centers = rng.uniform(-5, 5, (5, 32)).astype(np.float32)
    X = np.repeat(centers, 40, axis=0)
    search = kern.Nearest(centers, np.float32)
    assert search.shift is None
    D = search.partial(X) + np.einsum("ij,ij->i", X, X)[:, None]  # unclamped, as the kernels
    expanded = D[np.arange(len(X)), np.repeat(np.arange(5), 40)]
    # The premise of the tests below: without a clamp some squared distances are negative.
    assert (expanded < 0).any() and (expanded > 0).any()
    return X, centers


# --- Nearest --------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_nearest_matches_brute_force(blobs, offset):
    X, centers, _ = blobs
    X, centers = X + offset, centers + offset
    search = kern.Nearest(centers, np.float64)
    assert (search.shift is None) == (offset == 0)
    truth = brute_squared(X, centers)
    labels, dist = search(X)
    assert_array_equal(labels, truth.argmin(axis=1))
    assert_array_equal(search.labels(X), labels)
    # Far from the origin the shift keeps the digits: without it, 1e12-sized squared norms
    # would leave errors of about 1e-4 here.
    assert_allclose(dist, truth.min(axis=1), rtol=1e-9, atol=1e-9)
    assert_allclose(search.squared(X), truth, rtol=1e-9, atol=1e-9)
    assert_allclose(search.squared_t(X), truth.T, rtol=1e-9, atol=1e-9)
    assert_allclose(search.min_squared(X), truth.min(axis=1), rtol=1e-9, atol=1e-9)


def test_nearest_clamps_negative_squared_distances(rows_on_centers):
    X, centers = rows_on_centers
    search = kern.Nearest(centers, np.float32)
    _, dist = search(X)
    assert (dist >= 0).all()
    assert (search.squared(X) >= 0).all()
    assert (search.squared_t(X) >= 0).all()
    assert (search.min_squared(X) >= 0).all()
    assert np.isfinite(kern.distances_block(X, centers)).all()  # sqrt of a negative: NaN


def test_nearest_shifted_leaves_input_alone(blobs):
    X, centers, _ = blobs
    X = X + 1e6
    before = X.copy()
    kern.Nearest(centers + 1e6, np.float64)(X)
    assert_array_equal(X, before)


# --- OneHot -----------------------------------------------------------------------------------


def test_one_hot_sums_and_reuse():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((500, 3))
    onehot = kern.OneHot(500, 6, np.float64)
    for _ in range(2):  # the second call rewrites the first call's labels and weights
        labels = rng.integers(0, 6, 500)
        weights = rng.uniform(0, 2, 500)
        expected = np.zeros((6, 3))
        np.add.at(expected, labels, X * weights[:, None])
        assert_allclose(onehot.sums(X, labels, weights), expected, rtol=1e-12)
        unweighted = np.zeros((6, 3))
        np.add.at(unweighted, labels, X)
        assert_allclose(onehot.sums(X, labels), unweighted, rtol=1e-12)
    assert_allclose(kern.cluster_sums(X, labels, None, 6), unweighted, rtol=1e-12)


# --- statistics combine as the concatenated chunk's -------------------------------------------


def test_lloyd_stats_add_up(blobs):
    X, centers, w = blobs
    params = kern.LloydParams(centers, with_inertia=True)
    whole = kern.lloyd_chunk_weighted(X, w, params, 0)
    a = kern.lloyd_chunk_weighted(X[:1234], w[:1234], params, 0)
    b = kern.lloyd_chunk_weighted(X[1234:], w[1234:], params, 1234)
    assert_allclose(a.sums + b.sums, whole.sums, rtol=1e-12)
    assert_allclose(a.weights + b.weights, whole.weights, rtol=1e-12)
    assert a.inertia + b.inertia == pytest.approx(whole.inertia, rel=1e-12)
    labels = brute_squared(X, centers).argmin(axis=1)
    assert_allclose(whole.weights, np.bincount(labels, weights=w, minlength=7), rtol=1e-12)


def test_farthest_combine(blobs):
    X, centers, w = blobs
    whole = kern.farthest_chunk(X, w, (centers, 5), 0)
    parts = kern.farthest_chunk(X[:1000], w[:1000], (centers, 5), 0).combine(
        kern.farthest_chunk(X[1000:], w[1000:], (centers, 5), 1000)
    )
    assert_array_equal(parts.rows, whole.rows)
    assert_array_equal(parts.distances, whole.distances)
    expected = np.argsort(-brute_squared(X, centers).min(axis=1), kind="stable")[:5]
    assert_array_equal(np.sort(whole.rows), np.sort(expected))


def test_parallel_round_combine_keeps_exactly_the_sample(blobs):
    X, centers, w = blobs
    params = kern.ParallelRoundParams(centers[:2], 3.0, seed=5, round=1)
    whole = kern.parallel_round_chunk(X, w, params, 0)
    parts = kern.parallel_round_chunk(X[:700], w[:700], params, 0)
    for lo, hi in ((700, 2100), (2100, 3000)):
        parts = parts.combine(kern.parallel_round_chunk(X[lo:hi], w[lo:hi], params, lo))
    assert parts.cost == pytest.approx(whole.cost, rel=1e-12)
    assert_array_equal(np.sort(parts.rows), np.sort(whole.rows))
    # The sample is the rows whose key exceeds the total cost, as the single chunk has it.
    cost = (brute_squared(X, centers[:2]).min(axis=1) * w).sum()
    assert whole.cost == pytest.approx(cost, rel=1e-9)
    assert (whole.keys > whole.cost).all() and len(whole.rows) > 0


def test_plusplus_combine(blobs):
    X, centers, w = blobs
    params = kern.PlusPlusParams(centers[:2], centers[2:5], n_next_trials=3, seed=2, step=1)
    whole = kern.plusplus_chunk(X, w, params, 0)
    parts = kern.plusplus_chunk(X[:1500], w[:1500], params, 0).combine(
        kern.plusplus_chunk(X[1500:], w[1500:], params, 1500)
    )
    assert_allclose(parts.potential, whole.potential, rtol=1e-12)
    assert_array_equal(parts.rows, whole.rows)
    assert_array_equal(parts.score, whole.score)
    d = brute_squared(X, centers[:5])
    expected = np.minimum(d[:, :2].min(axis=1)[None, :], d[:, 2:5].T) * w
    assert_allclose(whole.potential, expected.sum(axis=1), rtol=1e-9)


def test_direct_distances_are_exact_and_each_points_own():
    """On few features the seedings take direct differences in float64: exact to rounding
    for float32 rows far from the origin (where the expanded form loses digits), and a
    point's distances are the same bits whatever points are computed with it."""
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(3000, 5)) * 3 + 1e4).astype(np.float32)
    points = X[[3, 70, 900]].astype(np.float64) + 0.25
    D = kern.direct_squared_t(X, points)
    exact = ((X.astype(np.float64)[None] - points[:, None]) ** 2).sum(axis=2)
    assert_allclose(D, exact, rtol=1e-14)
    for i in range(len(points)):
        assert_array_equal(kern.direct_squared_t(X[100:], points[i : i + 1])[0], D[i, 100:])
    assert kern.direct_distances(kern.DIRECT_MAX_FEATURES)
    assert not kern.direct_distances(kern.DIRECT_MAX_FEATURES + 1)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_lloyd_sums_of_few_features_are_the_sparse_products_bits(weighted, monkeypatch):
    """Few features: a Lloyd step's per-center sums by one bincount per feature, the same
    additions in the same order as the sparse product's (far from the origin: shifted)."""
    rng = np.random.default_rng(2)
    X = (rng.normal(size=(5000, 3)) + 100).astype(np.float32)
    w = rng.random(len(X)) if weighted else None
    params = kern.LloydParams(X[:6].astype(np.float64))
    few = kern._lloyd(X, w, params, passes=False)
    monkeypatch.setattr(kern, "DIRECT_MAX_FEATURES", 0)
    sparse = kern._lloyd(X, w, params, passes=False)
    assert_array_equal(few.sums, sparse.sums)
    assert_array_equal(few.weights, sparse.weights)
    # A one-row chunk (its transpose is contiguous already) is left as it was.
    row = X[:1].astype(np.float64)
    before = row.copy()
    monkeypatch.undo()
    kern._lloyd(row, None if w is None else w[:1], params, passes=False)
    assert_array_equal(row, before)


def test_a_greedy_step_folds_its_chosen_trials_kept_distances(monkeypatch):
    """With direct distances a greedy k-means++ step keeps its trials' distances: the next
    step folds its new center (one of them) from those, computing the trials' alone, with
    the bits of a step that computes every center again."""
    from bigclust import _chunk_state

    rng = np.random.default_rng(1)
    X = (rng.normal(size=(2000, 3)) + rng.integers(0, 4, (2000, 1)) * 5).astype(np.float32)
    first, trials = X[:1].astype(np.float64), X[[10, 500, 1500]].astype(np.float64)
    run = "kept-trials"
    try:
        kern.plusplus_chunk(X, kern.PlusPlusParams(first, first, 3, 5, 0, run), 0)
        kern.plusplus_chunk(X, kern.PlusPlusParams(first, trials, 3, 5, 1, run), 0)
        following = kern.PlusPlusParams(np.vstack([first, trials[1]]), X[[7, 8, 9]], 3, 5, 2, run)
        computed = []
        original = kern.direct_squared_t
        monkeypatch.setattr(
            kern, "direct_squared_t", lambda X, P: computed.append(len(P)) or original(X, P)
        )
        kept = kern.plusplus_chunk(X, following, 0)
        assert computed == [3]  # the trials' distances; the new center's were kept
        again = kern.plusplus_chunk(X, following._replace(run=""), 0)
        assert computed == [3, 1, 1, 3]  # without kept state: both centers, then the trials
    finally:
        _chunk_state.drop_run(run)
    for mine, theirs in zip(kept[:4], again[:4], strict=True):
        assert_array_equal(mine, theirs)


@pytest.mark.parametrize("keep_rows", [True, False], ids=["rows-kept", "norms-kept"])
def test_greedy_steps_through_the_product_keep_the_rows_around_the_first_center(
    keep_rows, monkeypatch
):
    """Beyond DIRECT_MAX_FEATURES a greedy step searches its trials and its new center
    around the seeding's first center: the chunk's rows less it (small chunks) and their
    norms are kept between the steps, with the bits of a step that computes them again."""
    from bigclust import _chunk_state

    if not keep_rows:
        monkeypatch.setattr(kern, "KEEP_SHIFTED_BYTES", 0)
    rng = np.random.default_rng(3)
    d = kern.DIRECT_MAX_FEATURES + 4
    X = (rng.normal(size=(3000, d)) + rng.integers(0, 3, (3000, 1)) * 4 + 50).astype(np.float32)
    first = X[:1].astype(np.float64)
    steps = [
        kern.PlusPlusParams(first, first, 3, 9, 0),
        kern.PlusPlusParams(first, X[[5, 600, 2000]].astype(np.float64), 3, 9, 1),
        kern.PlusPlusParams(np.vstack([first, X[600]]), X[[7, 8, 9]].astype(np.float64), 3, 9, 2),
    ]
    run = "rows-around"
    try:
        kept = [kern.plusplus_chunk(X, p._replace(run=run), 0) for p in steps]
        state = _chunk_state.STORE[run, 0]
        assert (state.around.rows is not None) == keep_rows
        assert_array_equal(state.around.shift, X[0])
    finally:
        _chunk_state.drop_run(run)
    # Against the searches' own shift and norms, computed anew for every search.
    monkeypatch.setattr(kern._RowsAround, "squared_t", lambda _, s, block, r: s.squared_t(block[r]))
    for mine, p in zip(kept, steps, strict=True):
        again = kern.plusplus_chunk(X, p, 0)
        for a, b in zip(mine[:4], again[:4], strict=True):
            assert_array_equal(a, b)
    last = steps[-1]
    exact = brute_squared(X.astype(np.float64), np.vstack([last.centers, last.trials]))
    potential = np.minimum(exact[:, :2].min(axis=1)[:, None], exact[:, 2:]).sum(axis=0)
    assert_allclose(kept[-1].potential, potential, rtol=1e-4)


@pytest.mark.parametrize("offset", [0.0, 1e8])
def test_column_moments_combine(blobs, offset):
    X, _, _ = blobs
    X = X + offset  # far from the origin, E[x^2] - E[x]^2 would lose every digit
    a = kern.column_moments_chunk(X[:999], 0)
    b = kern.column_moments_chunk(X[999:], 999)
    empty = kern.column_moments_chunk(X[:0], 0)
    for total in (a.combine(b), b.combine(empty).combine(a), empty.combine(a).combine(b)):
        assert total.count == len(X)
        assert_allclose(total.variance(), X.var(axis=0), rtol=1e-9)
        assert_allclose(total.mean, X.mean(axis=0), rtol=1e-13)
    assert_allclose(kern.column_moments_chunk(X, 0).variance(), X.var(axis=0), rtol=1e-9)


def test_labels_inertia_combine(blobs):
    X, centers, _ = blobs
    a = mbk.labels_inertia_chunk(X[:800], centers, 0)
    b = mbk.labels_inertia_chunk(X[800:], centers, 800)
    both = b.combine(a)  # in any order
    assert_array_equal(both.labels(), brute_squared(X, centers).argmin(axis=1))
    assert both.inertia == pytest.approx(brute_squared(X, centers).min(axis=1).sum(), rel=1e-12)


# --- compiled passes against the NumPy reference ----------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 2, 3, 8, 17, 64, 257])
@pytest.mark.parametrize("add", [True, False], ids=["centers_sq", "none"])
def test_compiled_nearest_is_numpys_argmin(dtype, k, add):
    """Ties (first index), NaN (the first NaN), infinities, signed zeros, negatives."""
    rng = np.random.default_rng(k)
    P = rng.standard_normal((400, k)).astype(dtype)
    P[:40] = np.round(P[:40])  # many ties
    P[40] = 1.0
    P[41, k // 2] = np.nan
    P[42, -1], P[42, 0] = np.nan, -np.inf
    P[43] = np.inf
    P[44] = -np.inf
    P[45, ::2] = -0.0
    P[45, 1::2] = 0.0
    P[46] = np.finfo(dtype).max
    P[47] = -np.finfo(dtype).tiny
    centers_sq = (
        np.round(np.abs(rng.standard_normal(k))).astype(dtype) if add else np.zeros(0, dtype)
    )
    expected = (P + centers_sq if add else P).argmin(axis=1)
    labels = np.full(len(P), -1, np.int32)
    _fused.nearest(P.copy(), centers_sq, labels)
    assert_array_equal(labels, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("offset", [0.0, 1e5])
def test_compiled_lloyd_matches_numpy(blobs, dtype, weighted, offset):
    X, centers, w = blobs
    X = (X + offset).astype(dtype)
    centers = centers + offset
    w = w if weighted else None
    params = kern.LloydParams(centers, with_inertia=True)
    ref = kern._lloyd(X, w, params, passes=False)
    fast = kern._lloyd(X, w, params, passes=_fused)
    assert_allclose(fast.sums, ref.sums, rtol=1e-12)
    assert_allclose(fast.weights, ref.weights, rtol=1e-12)
    assert fast.inertia == pytest.approx(ref.inertia, rel=1e-12)
    # Both are the exact statistics of the labels, to float64 rounding.
    labels = kern.labels_block(X, centers)
    x = X.astype(np.float64)
    weights = np.ones(len(X)) if w is None else w
    sums = np.zeros_like(centers)
    np.add.at(sums, labels, x * weights[:, None])
    assert_allclose(fast.sums, sums, rtol=1e-12)
    direct = (((x - centers[labels]) ** 2).sum(axis=1) * weights).sum()
    assert fast.inertia == pytest.approx(direct, rel=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_compiled_minibatch_step_matches_numpy(blobs, dtype, weighted):
    X, centers, w = blobs
    Xa = mbk.augment(X[:1500].astype(dtype))
    w = w[:1500].astype(dtype) if weighted else None
    C = centers.astype(dtype)
    counts = np.array([0.0, 3, 50, 7, 1, 0, 12])
    steps = [
        mbk.minibatch_step(
            Xa, w, C, counts, reassign=False, reassignment_ratio=0.01, rng=None, passes=p
        )
        for p in (False, _fused)
    ]
    ref, fast = steps
    rtol = 1e-12 if dtype == np.float64 else 1e-6  # the reference sums float32 in float32
    assert fast.centers.dtype == dtype
    assert_allclose(fast.centers, ref.centers, rtol=rtol)
    assert_allclose(fast.counts, ref.counts, rtol=1e-12 if dtype == np.float64 else 1e-6)
    assert fast.inertia == pytest.approx(ref.inertia, rel=1e-12)
    assert fast.finite and ref.finite
    labels = brute_squared(Xa[:, :-1], C).argmin(axis=1)
    assert_allclose(fast.counts - counts, np.bincount(labels, weights=w, minlength=7), rtol=1e-6)


@pytest.mark.parametrize("passes", [False, _fused], ids=["numpy", "compiled"])
def test_minibatch_step_sees_a_nan_row(blobs, passes):
    X, centers, _ = blobs
    X = X[:300].copy()
    X[17, 2] = np.nan
    with np.errstate(invalid="ignore"):
        step = mbk.minibatch_step(
            mbk.augment(X),
            None,
            centers,
            np.zeros(7),
            reassign=False,
            reassignment_ratio=0.01,
            rng=None,
            passes=passes,
        )
    assert not step.finite


@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_labels_inertia_matches_numpy(blobs, dtype):
    X, centers, w = blobs
    X = X.astype(dtype)
    ref = mbk.labels_inertia(X, w, centers, passes=False)
    fast = mbk.labels_inertia(X, w, centers, passes=_fused)
    assert_array_equal(fast[0], ref[0])
    assert fast[1] == pytest.approx(ref[1], rel=1e-12)


def test_compiled_passes_follow_the_call_alone(monkeypatch):
    # The same call always takes the same path, whatever ran before in the process: a rerun
    # (or a resumed fit) gives the same bits.
    monkeypatch.setattr(kern, "USE_COMPILED", None)
    monkeypatch.setattr(kern, "COMPILED_MIN_ELEMENTS", {"lloyd": 1000, "minibatch": 100})
    for _ in range(3):
        assert kern.compiled_passes("lloyd", np.float32, 999) is None
        assert kern.compiled_passes("lloyd", np.float64, 1000) is _fused
        assert kern.compiled_passes("minibatch", np.float32, 100) is _fused
        assert kern.compiled_passes("minibatch", np.float32, 99) is None
        # Rows wider than NARROW_FEATURES count for more: the same elements, 4x the width.
        assert kern.compiled_passes("minibatch", np.float32, 25, 4 * kern.NARROW_FEATURES)
        assert kern.compiled_passes("minibatch", np.float32, 24, 4 * kern.NARROW_FEATURES) is None
        assert kern.compiled_passes("minibatch", np.float32, 99, 2) is None
    monkeypatch.setattr(kern, "USE_COMPILED", False)
    assert kern.compiled_passes("lloyd", np.float32, 10**9) is None


# --- the reported inertia is exact --------------------------------------------------------------


@pytest.mark.parametrize("passes", [False, _fused], ids=["numpy", "compiled"])
def test_inertia_of_rows_on_their_centers_is_zero(rows_on_centers, passes):
    X, centers = rows_on_centers
    params = kern.LloydParams(centers, update_centers=False, with_inertia=True)
    assert kern._lloyd(X, None, params, passes=passes).inertia == 0.0
    assert mbk.labels_inertia(X, None, centers, passes=passes)[1] == 0.0
    a = mbk.assign(mbk.augment(X), None, centers, sums=False, passes=passes)
    assert a.inertia == 0.0


def test_estimators_report_zero_inertia_for_rows_on_centers(rows_on_centers):
    X, centers = rows_on_centers
    km = KMeans(len(centers), init=centers).fit(X)
    assert km.inertia_ == 0.0  # as scikit-learn's; the expanded form left about 1e-3
    assert km.score(X) == 0.0
    assert np.isfinite(km.transform(X)).all()
    mini = MiniBatchKMeans(len(centers), init=centers, batch_size=50, random_state=0).fit(X)
    # Its float32 center updates move the centers by an ulp or so: not zero, never negative.
    assert 0.0 <= mini.inertia_ < 1e-9
    assert -1e-9 < mini.score(X) <= 0.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_labels_block_matches_numpy_and_names_bad_rows(blobs, dtype, monkeypatch):
    X, centers, _ = blobs
    X = X.astype(dtype)
    monkeypatch.setattr(kern, "USE_COMPILED", False)
    expected = kern.labels_block(X, centers)
    monkeypatch.setattr(kern, "USE_COMPILED", True)
    assert_array_equal(kern.labels_block(X, centers), expected)
    for value in (np.nan, np.inf):
        bad = X.copy()
        bad[2345, 1] = value
        with pytest.raises(NonFiniteRow) as info, np.errstate(invalid="ignore"):
            kern.labels_block(bad, centers)
        assert info.value.local_row == 2345
    huge = np.full((3, X.shape[1]), np.finfo(dtype).max / 4, dtype)  # the sum overflows
    with np.errstate(over="ignore", invalid="ignore"):
        kern.labels_block(huge, centers)  # finite rows: no error
