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


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype,nan_row", CASES)
def test_kmeans_parallel_passes_together(dtype, nan_row, weighted):
    X = _rows(dtype, nan_row=nan_row)
    aligned = (np.random.default_rng(1).random(len(X)),) if weighted else ()
    candidates = [_centers(X, m, m, far=m == 21) for m in (1, 3, 21, 101)]
    rounds = [kern.ParallelRoundParams(c, 2.0 * len(c), 7 + (len(c) == 3), 2) for c in candidates]
    together = tg.parallel_round_together(X, *aligned, rounds, 5000)
    for mine, p in zip(together, rounds, strict=True):
        assert _equal(mine, kern.parallel_round_chunk(X, *aligned, p, 5000))
    together = tg.nearest_weights_together(X, *aligned, candidates, 5000)
    for mine, c in zip(together, candidates, strict=True):
        assert _equal(mine, kern.nearest_weights_chunk(X, *aligned, c, 5000))


@pytest.mark.parametrize("dtype,nan_row", CASES)
def test_plusplus_and_e_step_together(dtype, nan_row):
    X = _rows(dtype, nan_row=nan_row)
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
