"""BayesianGaussianMixture: parity with scikit-learn from the same initial responsibilities,
on any input, chunking and scheduler, far from the origin; priors; the notebook's use.

scikit-learn's fit is started from our initial responsibilities by overriding its
``_initialize_parameters(X, random_state)`` to call ``self._initialize(X, resp)``, which is
what its own initialisations end with; ours takes them as ``init_params=<array>``.
scikit-learn's fits run with one BLAS thread: on a busy machine OpenBLAS's spinning threads
make the many tiny products of a 600-row fit ten times slower.
"""

from __future__ import annotations

import functools
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture as SkBayesianGaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

import bigclust
import bigclust.io
from bigclust import BayesianGaussianMixture
from bigclust.driver import NonFiniteInputError
from bigclust.mixture import _base, _bayesian_mixture, _kernels
from bigclust.mixture._covariance import covariance_type

TYPES = ("full", "tied", "diag", "spherical")
PRIORS = ("dirichlet_process", "dirichlet_distribution")
K = 5  # more components than the data's three blobs: the variational fit empties some
RTOL = 1e-8

#: Fitted attributes compared with scikit-learn's.
ATTRIBUTES = (
    "weights_",
    "means_",
    "covariances_",
    "precisions_",
    "precisions_cholesky_",
    "mean_precision_",
    "degrees_of_freedom_",
    "mean_prior_",
    "covariance_prior_",
    "weight_concentration_prior_",
    "mean_precision_prior_",
    "degrees_of_freedom_prior_",
)


@functools.cache
def _data(n=600, d=3):
    """Three overlapping anisotropic blobs (as tests/test_gaussian_mixture.py)."""
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0, 0.0], [3.0, 1.0, -1.0], [-1.0, 4.0, 2.0]])[:, :d]
    scales = np.array([1.0, 0.7, 1.3])
    labels = rng.integers(3, size=n)
    X = centers[labels] + rng.normal(size=(n, d)) * scales[labels, None]
    X[:, 0] *= 2.0
    return X


@functools.cache
def _resp(n=600, d=3):
    """Soft initial responsibilities around K fixed points, with noise: a start far enough
    from the optimum that every fit takes several iterations."""
    X = _data(n, d)
    rng = np.random.default_rng(1)
    points = rng.normal(size=(K, d)) * 2.0
    logits = -0.1 * ((X[:, None, :] - points[None]) ** 2).sum(axis=2)
    logits += rng.normal(size=logits.shape)
    resp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return resp / resp.sum(axis=1, keepdims=True)


class _SkFromResp(SkBayesianGaussianMixture):
    """scikit-learn's estimator started from given responsibilities (``_given_resp``)."""

    def _initialize_parameters(self, X, random_state, xp=None):
        self._initialize(X, self._given_resp)


def _kwargs(ctype, prior, **extra):
    base = dict(
        n_components=K,
        covariance_type=ctype,
        weight_concentration_prior_type=prior,
        max_iter=300,
    )
    return {**base, **extra}


#: A fixed number of iterations for the tests that vary the input, chunking or scheduler
#: (which change only how the statistics are summed): a dozen passes each.
SHORT = {"max_iter": 12, "tol": 0.0}


@functools.cache
def _sklearn_fit(ctype, prior, warm_fits=1, **extra):
    sk = _SkFromResp(**_kwargs(ctype, prior, warm_start=warm_fits > 1, **extra))
    sk._given_resp = _resp()
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(warm_fits):
            sk.fit(_data())
    return sk


def _close(actual, expected, rtol, what=""):
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected)
    assert actual.shape == expected.shape, what
    atol = rtol * max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def _materialize(result):
    return result.compute() if isinstance(result, da.Array) else result


def _assert_parity(bgm, sk, X_ours, X_np, rtol=RTOL, offset=0.0):
    """Every fitted attribute and per-row output equals scikit-learn's (fitted on
    ``X_np``; ``offset`` is where our data sit relative to it)."""
    assert bgm.n_iter_ == sk.n_iter_ and bgm.converged_ == sk.converged_
    for name in ATTRIBUTES:
        ours = getattr(bgm, name)
        if name in ("means_", "mean_prior_"):
            ours = ours - offset
        _close(ours, getattr(sk, name), rtol, name)
    ours_wc, sk_wc = np.atleast_2d(bgm.weight_concentration_, sk.weight_concentration_)
    for ours, ref in zip(ours_wc, sk_wc, strict=True):
        _close(ours, ref, rtol, "weight_concentration_")
    # scikit-learn's tied bound is an array of shape (1,); ours a float.
    _close(bgm.lower_bound_, np.squeeze(sk.lower_bound_), rtol, "lower_bound_")
    _close(bgm.lower_bounds_, np.reshape(sk.lower_bounds_, -1), rtol, "lower_bounds_")
    _close(_materialize(bgm.predict_proba(X_ours)), sk.predict_proba(X_np), rtol, "proba")
    _close(_materialize(bgm.score_samples(X_ours)), sk.score_samples(X_np), rtol, "scores")
    _close(bgm.score(X_ours), sk.score(X_np), rtol, "score")
    np.testing.assert_array_equal(_materialize(bgm.predict(X_ours)), sk.predict(X_np))


def _fit(ctype, prior, X, resp=None, **extra):
    resp = _resp() if resp is None else resp
    return BayesianGaussianMixture(**_kwargs(ctype, prior, init_params=resp, **extra)).fit(X)


def _as_input(X, kind, chunk_rows, tmp_path, monkeypatch):
    if chunk_rows is not None:
        monkeypatch.setattr(bigclust.io, "DEFAULT_CHUNK_BYTES", chunk_rows * X.shape[1] * 8)
    if kind == "numpy":
        return X
    if kind == "dask":
        return da.from_array(X, chunks=(chunk_rows or X.shape[0], X.shape[1]))
    path = tmp_path / "X.zarr"
    z = zarr.create_array(str(path), shape=X.shape, dtype=X.dtype, chunks=(128, X.shape[1]))
    z[:] = X
    return zarr.open_array(str(path), mode="r")


# --- parity with scikit-learn ----------------------------------------------------------------


@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("ctype", TYPES)
def test_parity_with_sklearn(ctype, prior):
    sk = _sklearn_fit(ctype, prior)
    assert sk.n_iter_ > 5 and sk.converged_  # a real run, not a start that stops at once
    bgm = _fit(ctype, prior, _data())
    _assert_parity(bgm, sk, _data(), _data())


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "chunk_rows, ctype, prior",
    [(None, "spherical", PRIORS[0]), (97, "full", PRIORS[1]), (250, "tied", PRIORS[0])],
    ids=["1chunk", "97rows", "250rows"],
)
@pytest.mark.parametrize("kind", ["numpy", "zarr", "dask"])
def test_parity_on_any_input_and_chunking(kind, chunk_rows, ctype, prior, tmp_path, monkeypatch):
    X = _data()
    X_ours = _as_input(X, kind, chunk_rows, tmp_path, monkeypatch)
    resp = _resp() if kind != "dask" else da.from_array(_resp(), chunks=(200, K))
    with dask.config.set(scheduler="threads"):
        bgm = _fit(ctype, prior, X_ours, resp=resp, **SHORT)
    _assert_parity(bgm, _sklearn_fit(ctype, prior, **SHORT), X_ours, X)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("ctype", ["full", "diag"])
def test_parity_on_every_scheduler(ctype, scheduler):
    X_ours = da.from_array(_data(), chunks=(97, 3))
    bgm = _fit(ctype, PRIORS[0], X_ours, **SHORT)
    _assert_parity(bgm, _sklearn_fit(ctype, PRIORS[0], **SHORT), X_ours, _data())


@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("ctype", TYPES)
def test_precision_far_from_the_origin(ctype, prior):
    """Data at 1e6: our fit equals scikit-learn's fit of the same data at the origin."""
    offset = 1e6
    X = _data() + offset
    bgm = _fit(ctype, prior, X)
    _assert_parity(bgm, _sklearn_fit(ctype, prior), X, _data(), rtol=1e-7, offset=offset)


@pytest.mark.parametrize("ctype", TYPES)
def test_initial_parameters_match_sklearn(ctype):
    """``max_iter=0``: the parameters of the initial responsibilities, nothing else."""
    sk = _sklearn_fit(ctype, PRIORS[0], max_iter=0)
    bgm = _fit(ctype, PRIORS[0], _data(), max_iter=0)
    assert bgm.n_iter_ == 0 and bgm.lower_bound_ == -np.inf == sk.lower_bound_
    for name in ATTRIBUTES:
        _close(getattr(bgm, name), getattr(sk, name), RTOL, name)


def test_warm_start_continues_as_sklearn():
    """Two warm fits of 4 iterations each equal scikit-learn's two warm fits."""
    sk = _sklearn_fit("full", PRIORS[0], warm_fits=2, max_iter=4)
    bgm = BayesianGaussianMixture(**_kwargs("full", PRIORS[0], init_params=_resp()))
    bgm.set_params(max_iter=4, warm_start=True)
    with pytest.warns(ConvergenceWarning):
        bgm.fit(_data())
    with pytest.warns(ConvergenceWarning):
        bgm.fit(_data())
    _assert_parity(bgm, sk, _data(), _data())


@pytest.mark.parametrize("ctype", TYPES)
def test_given_priors_match_sklearn(ctype):
    d = 3
    covariance_prior = {
        "full": np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0.0, 0.1, 0.5]]),
        "tied": np.diag([1.5, 1.0, 0.5]),
        "diag": np.array([1.5, 1.0, 0.5]),
        "spherical": 0.7,
    }[ctype]
    priors = dict(
        weight_concentration_prior=0.05,
        mean_precision_prior=0.3,
        mean_prior=np.array([0.5, -1.0, 2.0])[:d],
        degrees_of_freedom_prior=4.5,
        covariance_prior=covariance_prior,
    )
    sk = _SkFromResp(**_kwargs(ctype, PRIORS[0], **priors))
    sk._given_resp = _resp()
    with threadpool_limits(1):
        sk.fit(_data())
    bgm = _fit(ctype, PRIORS[0], _data(), **priors)
    _assert_parity(bgm, sk, _data(), _data())


def _count_passes(monkeypatch):
    calls = []

    def counting(kernel, *args, **kwargs):
        calls.append(kernel.__name__)
        return real(kernel, *args, **kwargs)

    real = _base.map_reduce
    monkeypatch.setattr(_base, "map_reduce", counting)
    monkeypatch.setattr(_bayesian_mixture, "map_reduce", counting)
    return calls


@pytest.mark.parametrize(
    "given, passes",
    [
        ({}, 1),
        ({"mean_prior": np.zeros(3)}, 1),
        ({"mean_prior": np.zeros(3), "covariance_prior": np.eye(3)}, 0),
    ],
    ids=["defaults", "mean_given", "both_given"],
)
def test_data_priors_cost_one_pass(given, passes, monkeypatch):
    """One pass for the data's mean and covariance, none when both priors are given; then
    one for the initial responsibilities and one per iteration."""
    calls = _count_passes(monkeypatch)
    X = da.from_array(_data(), chunks=(97, 3))
    with pytest.warns(ConvergenceWarning):
        bgm = _fit("full", PRIORS[0], X, max_iter=3, **given)
    assert bgm.n_iter_ == 3
    assert calls == ["init_stats"] * passes + ["init_stats_and_moments"] + ["e_step_stats"] * 3


def test_data_moments_pass_equals_numpy():
    """The priors' pass: count, mean and covariance of the data, exact far from the origin,
    and chunks combine to the whole."""
    X = _data() + 1e7
    shift = X[17]
    whole = _kernels.init_stats(X, _kernels.InitResp("data", "full", 1, shift))
    parts = [
        _kernels.init_stats(X[lo:hi], _kernels.InitResp("data", "full", 1, shift), lo)
        for lo, hi in ((0, 100), (100, 357), (357, 600))
    ]
    combined = bigclust.driver.combine(bigclust.driver.combine(parts[0], parts[1]), parts[2])
    centered = _data() - _data().mean(axis=0)
    for stats in (whole, combined):
        assert stats.n_samples == 600 and stats.resp_sum[0] == 600
        _close(shift + stats.first[0] / 600 - 1e7, _data().mean(axis=0), 1e-9)
        _close(covariance_type("full").data_covariance(stats), np.cov(centered.T), 1e-9)
    for name, expected in (
        ("tied", np.cov(centered.T)),
        ("diag", np.var(centered, axis=0, ddof=1)),
        ("spherical", np.var(centered, axis=0, ddof=1).mean()),
    ):
        stats = _kernels.init_stats(X, _kernels.InitResp("data", name, 1, shift))
        _close(covariance_type(name).data_covariance(stats), expected, 1e-9, name)


def test_float32_input_keeps_float32():
    X = _data().astype(np.float32)
    bgm = _fit("diag", PRIORS[0], X)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(bgm, name).dtype == np.float32, name
    assert bgm.predict_proba(X).dtype == np.float32
    reference = _sklearn_fit("diag", PRIORS[0])
    _close(bgm.means_, reference.means_, 1e-4)
    _close(bgm.lower_bound_, reference.lower_bound_, 1e-4)


# --- the per-row outputs and sampling --------------------------------------------------------


def test_outputs_follow_inputs():
    bgm = _fit("full", PRIORS[0], _data())
    lazy = da.from_array(_data(), chunks=(97, 3))
    for method in (bgm.predict, bgm.predict_proba, bgm.score_samples):
        assert isinstance(method(lazy), da.Array)
        assert isinstance(method(_data()), np.ndarray)
    assert bgm.predict(_data()).dtype == np.int64
    np.testing.assert_array_equal(bgm.fit_predict(lazy).compute(), bgm.predict(_data()))


@pytest.mark.parametrize("ctype", TYPES)
def test_sample(ctype):
    bgm = _fit(ctype, PRIORS[0], _data(), random_state=3)
    X, y = bgm.sample(4000)
    assert X.shape == (4000, 3) and y.shape == (4000,)
    np.testing.assert_array_equal(np.diff(y) >= 0, True)
    X2, y2 = bgm.sample(4000)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    counts = np.bincount(y, minlength=K) / 4000
    np.testing.assert_allclose(counts, bgm.weights_, atol=0.03)
    big = np.argmax(bgm.weights_)
    np.testing.assert_allclose(X[y == big].mean(axis=0), bgm.means_[big], atol=0.2)


# --- the notebook's use (Hands-On Machine Learning, ch. 9) -----------------------------------


@pytest.mark.slow
def test_notebook_three_ellipsoids_leave_three_components():
    """``n_components=10, n_init=10``: three components keep weight, as in the book."""
    X1, _ = make_blobs(n_samples=1000, centers=((4, -4), (0, 0)), random_state=42)
    X1 = X1.dot(np.array([[0.374, 0.95], [0.732, 0.598]]))
    X2, _ = make_blobs(n_samples=250, centers=1, random_state=42)
    X = np.r_[X1, X2 + np.array([6, -8])]
    bgm = BayesianGaussianMixture(n_components=10, n_init=10, random_state=42).fit(X)
    active = np.sort(bgm.weights_[bgm.weights_ > 0.01])
    np.testing.assert_allclose(active, [0.2, 0.4, 0.4], atol=0.01)


# --- bad input -------------------------------------------------------------------------------


def _unreadable(n=600, d=3):
    def explode(block_info=None):
        raise AssertionError("the data were read")

    return da.map_blocks(explode, chunks=((n // 2, n - n // 2), (d,)), dtype=np.float64)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"weight_concentration_prior_type": "dp"}, "unknown weight_concentration_prior_type"),
        ({"weight_concentration_prior": 0.0}, "weight_concentration_prior=0.0 should be"),
        ({"mean_precision_prior": -1.0}, "mean_precision_prior=-1.0 should be"),
        ({"degrees_of_freedom_prior": 1.5}, "should be greater than 2, but got 1.500"),
        ({"mean_prior": np.zeros(4)}, r"'means' should have the shape of \(3,\)"),
        ({"mean_prior": [0.0, np.nan, 0.0]}, "'mean_prior' contains NaN"),
        ({"covariance_prior": -2.0}, "covariance_prior=-2.0 should be"),
        ({"covariance_prior": np.eye(2)}, r"'full covariance_prior' should have the shape"),
        ({"covariance_prior": -np.eye(3)}, "'full precision' should be symmetric, positive"),
        (
            {"covariance_type": "tied", "covariance_prior": np.triu(np.ones((3, 3)))},
            "'tied precision' should be symmetric, positive-definite",
        ),
        (
            {"covariance_type": "diag", "covariance_prior": np.array([1.0, 0.0, 1.0])},
            "'diag precision' should be positive",
        ),
        (
            {"covariance_type": "diag", "covariance_prior": np.ones(2)},
            r"'diag covariance_prior' should have the shape of \(3,\)",
        ),
        (
            {"covariance_type": "spherical", "covariance_prior": np.ones(3)},
            "'spherical covariance_prior' should be a positive float",
        ),
        ({"init_params": np.ones((600, 4)) / 4}, r"expected \(n_samples, n_components\)"),
        ({"covariance_type": "ful"}, "unknown covariance_type 'ful'"),
    ],
)
def test_bad_parameters_raise_before_reading_data(kwargs, match):
    kwargs = {"n_components": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        BayesianGaussianMixture(**kwargs).fit(_unreadable())


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_input_names_the_row(bad):
    X = _data().copy()
    X[321, 1] = bad
    with pytest.raises(NonFiniteInputError, match="row 321"):
        BayesianGaussianMixture(n_components=3, init_params="random").fit(
            da.from_array(X, chunks=(97, 3))
        )
    fitted = _fit("full", PRIORS[0], _data())
    for method in (fitted.predict, fitted.predict_proba, fitted.score_samples, fitted.score):
        with pytest.raises(ValueError, match="row 321"):
            method(X)


# --- scikit-learn API conformance ------------------------------------------------------------


_ESTIMATORS = [
    BayesianGaussianMixture(init_params="k-means++", random_state=0),
    BayesianGaussianMixture(
        n_components=2,
        covariance_type="diag",
        weight_concentration_prior_type="dirichlet_distribution",
        init_params="random_from_data",
        random_state=0,
    ),
    BayesianGaussianMixture(random_state=0),
]


@parametrize_with_checks(_ESTIMATORS)
def test_sklearn_api(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
