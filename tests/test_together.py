"""Together forms: many models' statistics from one chunk, each bitwise its own kernel's."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from bigclust import GaussianMixture, KMeans, driver
from bigclust import _together as tg
from bigclust.cluster import _kernels as kern
from bigclust.mixture import _kernels as gk
from bigclust.model_selection import fit_together


@pytest.fixture(autouse=True)
def compiled(monkeypatch):
    """The compiled loops whatever the size (they load only for large chunks otherwise)."""
    monkeypatch.setattr(tg, "MIN_TOGETHER_ELEMENTS", 0)


def _rows(dtype, n=20000, d=6, nan_row=None):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)) * 2 + rng.integers(0, 3, size=(n, 1)) * 6
    if nan_row is not None:
        X[nan_row, 2] = np.nan
    return X.astype(dtype)


def _equal(a, b) -> bool:
    if isinstance(a, tuple):
        return all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):  # where each chunk's state is kept
        return a == b
    return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)


def _centers(X, k, seed, far=False):
    rng = np.random.default_rng(seed)
    centers = X[rng.choice(len(X), k, replace=False)].astype(np.float64)
    # Far from the data (and from the origin): the search shifts rows and centers.
    return centers + 1e3 if far else centers


CASES = [
    pytest.param(np.float32, None, id="float32"),
    pytest.param(np.float64, None, id="float64"),
    pytest.param(np.float32, 12345, id="nan-row"),
]


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype,nan_row", CASES)
def test_lloyd_together_is_each_models_own_step(dtype, nan_row, weighted):
    X = _rows(dtype, nan_row=nan_row)
    w = np.random.default_rng(1).random(len(X)) if weighted else None
    params = [
        kern.LloydParams(_centers(X, k, k, far=k == 3), update_centers=k != 5, with_inertia=k > 4)
        for k in (1, 2, 3, 5, 8, 210)  # 210: rows x centers takes the compiled passes alone
    ]
    together = (
        tg.lloyd_together_weighted(X, w, params, 0) if weighted else tg.lloyd_together(X, params, 0)
    )
    alone = [kern._lloyd(X, w, p) for p in params]
    for mine, theirs in zip(together, alone, strict=True):
        assert _equal(mine, theirs)
    moments = tg.lloyd_and_moments_together(X, params, 0)
    for mine, p in zip(moments, params, strict=True):
        assert _equal(mine, kern.lloyd_and_moments_chunk(X, p, 0))


#: Features of the seedings' tests: direct distances, and through the BLAS product.
SEEDING_FEATURES = pytest.mark.parametrize(
    "d", [kern.DIRECT_MAX_FEATURES - 2, kern.DIRECT_MAX_FEATURES + 4], ids=["direct", "product"]
)


@SEEDING_FEATURES
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype,nan_row", CASES)
def test_kmeans_parallel_passes_together(dtype, nan_row, weighted, d):
    X = _rows(dtype, nan_row=nan_row, d=d)
    aligned = (np.random.default_rng(1).random(len(X)),) if weighted else ()
    candidates = [_centers(X, m, m, far=m == 21) for m in (1, 3, 21, 101)]
    rounds = [kern.ParallelRoundParams(c, 2.0 * len(c), 7 + (len(c) == 3), 2) for c in candidates]
    together = tg.parallel_round_together(X, *aligned, rounds, 5000)
    for mine, p in zip(together, rounds, strict=True):
        assert _equal(mine, kern.parallel_round_chunk(X, *aligned, p, 5000))
    together = tg.nearest_weights_together(X, *aligned, candidates, 5000)
    for mine, c in zip(together, candidates, strict=True):
        assert _equal(mine, kern.nearest_weights_chunk(X, *aligned, c, 5000))


@SEEDING_FEATURES
@pytest.mark.parametrize("dtype,nan_row", CASES)
def test_plusplus_and_e_step_together(dtype, nan_row, d):
    X = _rows(dtype, nan_row=nan_row, d=d)
    steps = [
        kern.PlusPlusParams(_centers(X, j, j), _centers(X, s, s + 9), s, 3 + (j == 2), j)
        for j, s in ((1, 2), (2, 2), (2, 3), (4, 3))
    ]
    for mine, p in zip(tg.plusplus_together(X, steps, 700), steps, strict=True):
        assert _equal(mine, kern.plusplus_chunk(X, p, 700))
    rng = np.random.default_rng(2)
    d = X.shape[1]
    models = []
    for k, ctype in [(1, "diag"), (3, "spherical"), (4, "full"), (2, "tied"), (5, "diag")]:
        precisions = {"diag": np.ones((k, d)), "spherical": np.ones(k),
                      "full": np.tile(np.eye(d), (k, 1, 1)), "tied": np.eye(d)}[ctype]  # fmt: skip
        models.append(gk.make_model(ctype, rng.random(k) + 0.1, _centers(X, k, k), precisions,
                                    with_entropy=k == 5))  # fmt: skip
    for mine, model in zip(tg.e_step_together(X, models, 0), models, strict=True):
        assert _equal(mine, gk.e_step_stats(X, model))


def test_a_step_that_two_seedings_take_is_taken_once(monkeypatch):
    """Seedings of one seed and one number of trials (a sweep over k) take the same steps:
    each is computed once, both seedings get its bits, and the one that did not compute it
    goes on from the kept distances exactly as a seeding that computed every step."""
    from bigclust import _chunk_state

    X = _rows(np.float32)
    centers, trials = _centers(X, 2, 1), _centers(X, 3, 2)
    steps = [kern.PlusPlusParams(centers, trials, 3, 7, 2, run) for run in ("a", "b")]
    other = kern.PlusPlusParams(centers, trials, 4, 7, 2, "c")  # another number of trials
    for run in ("a", "b", "c"):  # each seeding's distances so far, as its earlier steps kept
        kern.nearest_so_far(X, centers[:1], (1,), run, 100, centers[0])
    taken = []
    original = kern.plusplus_step
    monkeypatch.setattr(kern, "plusplus_step", lambda *a: taken.append(a[2].run) or original(*a))
    try:
        together = tg.plusplus_together(X, [*steps, other], 100)
        assert taken == ["a", "c"]
        monkeypatch.setattr(kern, "plusplus_step", original)
        alone = kern.plusplus_chunk(X, steps[0]._replace(run=""), 100)
        for mine in together[:2]:
            assert _equal(mine, alone)
        assert _equal(together[2], kern.plusplus_chunk(X, other._replace(run=""), 100))
        kept = [_chunk_state.STORE[run, 100] for run in ("a", "b")]
        assert kept[0].distances is not kept[1].distances
        assert np.array_equal(kept[0].distances, kept[1].distances)
        assert kept[0].n_folded == kept[1].n_folded == 2
        following = kern.PlusPlusParams(np.vstack([centers, trials[1]]), trials, 3, 7, 3, "b")
        assert _equal(
            kern.plusplus_chunk(X, following, 100),
            kern.plusplus_chunk(X, following._replace(run=""), 100),
        )
    finally:
        for run in ("a", "b", "c"):
            _chunk_state.drop_run(run)


@pytest.mark.parametrize("dtype,nan_row", CASES)
def test_mixtures_around_one_shift_share_their_feature_blocks(dtype, nan_row, monkeypatch):
    """Mixtures of one covariance type around one shift (fits on the same data) take each
    block's features once, and each gets the bits of its own kernel; the last block is
    short (20,000 rows are no multiple of the block)."""
    X = _rows(dtype, nan_row=nan_row)
    d = X.shape[1]
    shift = np.nanmean(X.astype(np.float64), axis=0)
    rng = np.random.default_rng(3)
    models = []
    for k, ctype, entropy in [(1, "diag", False), (4, "diag", True), (9, "diag", False),
                              (3, "full", False), (5, "full", False)]:  # fmt: skip
        precisions = np.ones((k, d)) if ctype == "diag" else np.tile(np.eye(d), (k, 1, 1))
        models.append(gk.make_model(ctype, rng.random(k) + 0.1, _centers(X, k, k), precisions,
                                    shift, with_entropy=entropy))  # fmt: skip
    built = []
    original = gk.phi_rows
    monkeypatch.setattr(gk, "phi_rows", lambda *a, **kw: built.append(a[1]) or original(*a, **kw))
    together = tg.e_step_together(X, models, 0)
    starts = {c: range(0, len(X), gk.block_rows(gk.n_phi(c, d), 9)) for c in ("diag", "full")}
    assert gk.block_rows(gk.n_phi("diag", d), 1) == gk.block_rows(gk.n_phi("diag", d), 9)
    assert sorted(built) == sorted([*starts["diag"], *starts["full"]])  # once per group
    monkeypatch.setattr(gk, "phi_rows", original)
    for mine, model in zip(together, models, strict=True):
        assert _equal(mine, gk.e_step_stats(X, model))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fits_together_use_the_together_forms_and_match_alone(
    monkeypatch, kmeans_parallel_at_any_size
):
    from tests.test_model_selection import _same

    X = da.from_array(_rows(np.float32, n=6000, d=4), chunks=(2000, 4))
    used = []
    original = driver._run_together_form

    def spy(together, checks, *rest):
        used.append(together.__name__)
        return original(together, checks, *rest)

    monkeypatch.setattr(driver, "_run_together_form", spy)
    kmeans = [KMeans(k, random_state=0, max_iter=8) for k in (2, 3, 5)]
    mixtures = [GaussianMixture(k, covariance_type=c, init_params="k-means++", max_iter=4,
                                random_state=0) for k, c in ((2, "diag"), (3, "full"))]  # fmt: skip
    fit_together([*kmeans, *mixtures], X)
    forms = {"parallel_round_together", "nearest_weights_together", "lloyd_together",
             "lloyd_and_moments_together", "plusplus_together", "e_step_together"}  # fmt: skip
    assert forms <= set(used)
    used.clear()
    alone = [m.__class__(**m.get_params()).fit(X) for m in [*kmeans, *mixtures]]
    assert not used
    for together, single in zip([*kmeans, *mixtures], alone, strict=True):
        _same(together, single)


def test_compiled_off_leaves_every_model_to_its_own_kernel(monkeypatch):
    """``BIGCLUST_COMPILED=0`` (``USE_COMPILED = False``): numba is never loaded here either."""

    def refuse():
        raise AssertionError("the compiled loops were loaded")

    monkeypatch.setattr(kern, "USE_COMPILED", False)
    monkeypatch.setattr(tg, "_compiled", refuse)
    X = _rows(np.float32)
    params = [kern.LloydParams(_centers(X, k, k)) for k in (2, 3)]
    for mine, p in zip(tg.lloyd_together(X, params, 0), params, strict=True):
        assert _equal(mine, kern.lloyd_chunk(X, p, 0))
