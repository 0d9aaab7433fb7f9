"""GaussianMixture: parity with scikit-learn, any input, chunking and scheduler, bad input.

scikit-learn API conformance runs ``parametrize_with_checks`` on NumPy input. Skipped there:
``check_array_api_input`` (scikit-learn skips it itself unless ``SCIPY_ARRAY_API`` is set;
bigclust does not dispatch on the array API). The default ``init_params="kmeans"`` instance
joins the checked estimators once ``bigclust.KMeans`` is merged.
"""

from __future__ import annotations

import functools
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

import bigclust
import bigclust.io
from bigclust import GaussianMixture
from bigclust.driver import NonFiniteInputError
from bigclust.mixture import percentile

TYPES = ("full", "tied", "diag", "spherical")
K_COMPONENTS = 3


@functools.cache
def _data(n=600, d=3):
    """Three overlapping blobs: EM needs several iterations, as real data do."""
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0, 0.0], [3.0, 1.0, -1.0], [-1.0, 4.0, 2.0]])[:, :d]
    scales = np.array([1.0, 0.7, 1.3])
    labels = rng.integers(K_COMPONENTS, size=n)
    X = centers[labels] + rng.normal(size=(n, d)) * scales[labels, None]
    X[:, 0] *= 2.0  # anisotropic, so the covariance types differ
    return X


def _init(ctype, d=3):
    """Fixed initial parameters (same for scikit-learn and bigclust)."""
    k = K_COMPONENTS
    means = np.array([[1.0, 0.5, 0.5], [4.0, 1.5, -0.5], [-2.0, 3.0, 1.0]])[:, :d]
    precisions = {
        "full": np.stack([np.eye(d) * (j + 1) / 2 for j in range(k)]),
        "tied": np.eye(d),
        "diag": np.ones((k, d)) * np.array([0.5, 1.0, 1.5])[:, None],
        "spherical": np.array([0.5, 1.0, 1.5]),
    }[ctype]
    return {
        "weights_init": np.array([0.3, 0.3, 0.4]),
        "means_init": means,
        "precisions_init": precisions,
    }


@functools.cache
def _sklearn_fit(ctype, dtype, offset=0.0):
    X = _data().astype(dtype)
    sk = SkGaussianMixture(K_COMPONENTS, covariance_type=ctype, **_init(ctype))
    sk.fit(X)
    return sk


def _as_input(X, kind, chunk_rows, tmp_path, monkeypatch):
    """The data as NumPy, Zarr or Dask input, split into chunks of ``chunk_rows`` rows."""
    if chunk_rows is not None:
        # NumPy and Zarr inputs are chunked by the data layer's default chunk size.
        monkeypatch.setattr(bigclust.io, "DEFAULT_CHUNK_BYTES", chunk_rows * X.shape[1] * 8)
    if kind == "numpy":
        return X
    if kind == "dask":
        return da.from_array(X, chunks=(chunk_rows or X.shape[0], X.shape[1]))
    path = tmp_path / "X.zarr"
    z = zarr.create_array(str(path), shape=X.shape, dtype=X.dtype, chunks=(128, X.shape[1]))
    z[:] = X
    return zarr.open_array(str(path), mode="r")


def _close(actual, expected, rtol, what=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, what
    atol = rtol * max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def _assert_parity(gm, sk, X_ours, X_np, rtol):
    assert gm.n_iter_ == sk.n_iter_ > 2
    assert gm.converged_ == sk.converged_
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        ours, ref = getattr(gm, name), getattr(sk, name)
        # float32 in, float32 out (scikit-learn's dtype here depends on the init's dtype).
        assert ours.dtype == X_np.dtype, name
        _close(ours, ref, rtol, name)
    _close(gm.lower_bound_, sk.lower_bound_, rtol, "lower_bound_")
    _close(gm.lower_bounds_, sk.lower_bounds_, rtol, "lower_bounds_")
    _close(_materialize(gm.predict_proba(X_ours)), sk.predict_proba(X_np), rtol, "proba")
    _close(_materialize(gm.score_samples(X_ours)), sk.score_samples(X_np), rtol, "scores")
    _close(gm.bic(X_ours), sk.bic(X_np), rtol, "bic")
    _close(gm.aic(X_ours), sk.aic(X_np), rtol, "aic")
    np.testing.assert_array_equal(_materialize(gm.predict(X_ours)), sk.predict(X_np))


def _materialize(result):
    return result.compute() if isinstance(result, da.Array) else result


# --- parity with scikit-learn ----------------------------------------------------------------


@pytest.mark.parametrize("chunk_rows", [None, 97, 250], ids=["1chunk", "97rows", "250rows"])
@pytest.mark.parametrize("kind", ["numpy", "zarr", "dask"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("ctype", TYPES)
def test_parity_with_sklearn(ctype, dtype, kind, chunk_rows, tmp_path, monkeypatch):
    X = _data().astype(dtype)
    sk = _sklearn_fit(ctype, dtype)
    X_ours = _as_input(X, kind, chunk_rows, tmp_path, monkeypatch)
    with dask.config.set(scheduler="threads"):
        gm = GaussianMixture(K_COMPONENTS, covariance_type=ctype, **_init(ctype))
        gm.fit(X_ours)
        _assert_parity(gm, sk, X_ours, X, 1e-8 if dtype == np.float64 else 1e-4)


@pytest.mark.parametrize("ctype", TYPES)
def test_parity_on_every_scheduler(ctype, scheduler):
    X = _data()
    sk = _sklearn_fit(ctype, np.float64)
    X_ours = da.from_array(X, chunks=(97, 3))
    gm = GaussianMixture(K_COMPONENTS, covariance_type=ctype, **_init(ctype))
    _assert_parity(gm.fit(X_ours), sk, X_ours, X, 1e-8)


def test_parity_on_worker_processes(processes, tmp_path, monkeypatch):
    X = _data()
    X_ours = _as_input(X, "zarr", 97, tmp_path, monkeypatch)
    gm = GaussianMixture(K_COMPONENTS, covariance_type="full", **_init("full"))
    _assert_parity(gm.fit(X_ours), _sklearn_fit("full", np.float64), X_ours, X, 1e-8)


@pytest.mark.parametrize("ctype", TYPES)
def test_precision_far_from_the_origin(ctype):
    """Data at 1e6: our fit matches scikit-learn's fit of the data at the origin."""
    offset = 1e6
    X = _data()
    sk = _sklearn_fit(ctype, np.float64)
    init = _init(ctype)
    init["means_init"] = init["means_init"] + offset
    gm = GaussianMixture(K_COMPONENTS, covariance_type=ctype, **init)
    gm.fit(X + offset)
    assert gm.n_iter_ == sk.n_iter_
    _close(gm.means_ - offset, sk.means_, 1e-6, "means")
    for name in ("weights_", "covariances_", "precisions_", "precisions_cholesky_"):
        _close(getattr(gm, name), getattr(sk, name), 1e-6, name)
    _close(gm.lower_bound_, sk.lower_bound_, 1e-6)
    _close(gm.score_samples(X + offset), sk.score_samples(X), 1e-6)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_e_steps_are_taken_around_the_datas_mean():
    """The origin of a fit's E-steps is the data's mean from the initialization pass: the
    same point for any number of components (so fits on the same data share their
    features), kept far from the origin; without that pass, the mixture's mean."""
    X = _data() + 1e6
    chunked = da.from_array(X, chunks=(97, X.shape[1]))
    fits = [GaussianMixture(k, random_state=0, max_iter=3).fit(chunked) for k in (2, 3)]
    first, second = (gm._last_model.shift for gm in fits)
    assert np.array_equal(first, second)
    np.testing.assert_allclose(first, X.mean(axis=0), rtol=1e-15)
    given = {"weights_init": fits[0].weights_, "means_init": fits[0].means_,
             "precisions_init": fits[0].precisions_}  # fmt: skip
    resumed = GaussianMixture(2, max_iter=1, **given).fit(chunked)
    np.testing.assert_allclose(resumed._last_model.shift, fits[0].weights_ @ fits[0].means_)


# --- initialisation --------------------------------------------------------------------------


@pytest.mark.parametrize("init_params", ["random", "random_from_data", "k-means++"])
@pytest.mark.parametrize("ctype", ["full", "tied"])
def test_initialisations_do_not_depend_on_chunking(init_params, ctype):
    X = _data()
    fits = []
    for chunks in (600, 97, 250):
        gm = GaussianMixture(
            K_COMPONENTS, covariance_type=ctype, init_params=init_params, random_state=3
        )
        fits.append(gm.fit(da.from_array(X, chunks=(chunks, 3))))
    for other in fits[1:]:
        _close(other.means_, fits[0].means_, 1e-9)
        _close(other.covariances_, fits[0].covariances_, 1e-9)
        assert other.n_iter_ == fits[0].n_iter_


@pytest.mark.parametrize("init_params", ["random_from_data", "k-means++"])
def test_initialisations_as_good_as_sklearns(init_params):
    """Same seeding strategies, different random numbers: over several seeds the optima
    reached are as good as scikit-learn's."""
    X = _data()
    kwargs = dict(covariance_type="full", init_params=init_params)
    ours = [GaussianMixture(K_COMPONENTS, random_state=s, **kwargs).fit(X) for s in range(5)]
    ref = [SkGaussianMixture(K_COMPONENTS, random_state=s, **kwargs).fit(X) for s in range(5)]
    ours_median = np.median([gm.lower_bound_ for gm in ours])
    assert ours_median >= np.median([gm.lower_bound_ for gm in ref]) - 0.02


def test_initial_parameters_match_sklearn_for_data_rows():
    """random_from_data / k-means++ start from one-hot responsibilities at data rows: the
    first M-step puts the means on those rows and the covariances at reg_covar."""
    X = _data()
    gm = GaussianMixture(K_COMPONENTS, init_params="k-means++", max_iter=0, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # max_iter=0 must not warn
        gm.fit(X)
    distances = np.abs(X[:, None, :] - gm.means_[None]).max(axis=2)  # (n, k)
    rows = distances.argmin(axis=0)
    assert distances.min(axis=0).max() < 1e-12 and len(set(rows.tolist())) == K_COMPONENTS
    _close(gm.covariances_, np.broadcast_to(1e-6 * np.eye(3), (K_COMPONENTS, 3, 3)), 1e-9)
    _close(gm.weights_, np.full(K_COMPONENTS, 1 / len(X)), 1e-9)
    assert gm.n_iter_ == 0


def test_max_iter_zero_keeps_the_given_parameters():
    init = _init("full")
    gm = GaussianMixture(K_COMPONENTS, max_iter=0, **init).fit(_unreadable())  # no pass at all
    _close(gm.means_, init["means_init"], 1e-15)
    _close(gm.precisions_, init["precisions_init"], 1e-12)
    _close(gm.covariances_, np.linalg.inv(init["precisions_init"]), 1e-12)
    assert gm.n_iter_ == 0 and gm.lower_bound_ == -np.inf


@pytest.mark.parametrize("kind", ["numpy", "dask"])
def test_kmeans_initialisation(kind):
    X = _data()
    X_in = X if kind == "numpy" else da.from_array(X, chunks=(97, 3))
    gm = GaussianMixture(K_COMPONENTS, random_state=0).fit(X_in)
    sk = SkGaussianMixture(K_COMPONENTS, random_state=0).fit(X)
    _close(np.sort(gm.means_[:, 0]), np.sort(sk.means_[:, 0]), 1e-3)
    assert abs(gm.lower_bound_ - sk.lower_bound_) < 1e-3


def test_n_init_keeps_the_best_and_warm_start_continues():
    X = _data()
    one = GaussianMixture(K_COMPONENTS, init_params="random", random_state=5, max_iter=3)
    many = GaussianMixture(K_COMPONENTS, init_params="random", random_state=5, max_iter=3, n_init=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        one.fit(X)
        many.fit(X)
    assert many.lower_bound_ >= one.lower_bound_  # init 0 is among the four

    kwargs = dict(covariance_type="diag", warm_start=True, max_iter=2, tol=0.0, **_init("diag"))
    ours, ref = GaussianMixture(K_COMPONENTS, **kwargs), SkGaussianMixture(K_COMPONENTS, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(2):
            ours.fit(X)
            ref.fit(X)
    _close(ours.means_, ref.means_, 1e-8)
    _close(ours.lower_bound_, ref.lower_bound_, 1e-8)


# --- outputs follow inputs, predictions, scores ----------------------------------------------


def test_outputs_follow_inputs(tmp_path, monkeypatch):
    X = _data().astype(np.float32)
    gm = GaussianMixture(K_COMPONENTS, covariance_type="diag", **_init("diag")).fit(X)
    assert gm.means_.dtype == np.float32
    for kind in ("numpy", "zarr", "dask"):
        X_in = _as_input(X, kind, 128, tmp_path / kind, monkeypatch)
        labels, proba, scores = gm.predict(X_in), gm.predict_proba(X_in), gm.score_samples(X_in)
        expected_type = np.ndarray if kind == "numpy" else da.Array
        for out in (labels, proba, scores):
            assert isinstance(out, expected_type), kind
        assert proba.shape == (600, K_COMPONENTS) and scores.shape == (600,)
        assert proba.dtype == scores.dtype == np.float32
        assert labels.dtype == np.int64
    path = tmp_path / "zarr" / "X.zarr"
    assert isinstance(gm.predict(str(path)), da.Array)  # a path is a store: lazy


@pytest.mark.parametrize("kind", ["numpy", "dask"])
def test_fit_predict_equals_predict_after_fit(kind):
    X = _data()
    X_in = X if kind == "numpy" else da.from_array(X, chunks=(97, 3))
    kwargs = dict(covariance_type="full", init_params="random", random_state=0, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = GaussianMixture(K_COMPONENTS, **kwargs).fit_predict(X_in)
        gm = GaussianMixture(K_COMPONENTS, **kwargs).fit(X_in)
    assert isinstance(labels, np.ndarray if kind == "numpy" else da.Array)
    labels = _materialize(labels)
    np.testing.assert_array_equal(labels, _materialize(gm.predict(X_in)))
    assert len(np.unique(labels)) == K_COMPONENTS


def test_score_is_mean_of_score_samples():
    X = _data()
    gm = GaussianMixture(K_COMPONENTS, **_init("full")).fit(X)
    Xd = da.from_array(X, chunks=(97, 3))
    np.testing.assert_allclose(gm.score(Xd), gm.score_samples(X).mean(), rtol=1e-12)
    np.testing.assert_allclose(gm.score(X), gm.score_samples(X).mean(), rtol=1e-12)


def test_density_threshold_without_materialising_scores(tmp_path, monkeypatch):
    """The anomaly workflow: lazy scores of a Zarr array, exact 2nd percentile threshold;
    the client only receives histograms and a few hundred values, never the scores."""
    import bigclust._percentile as P

    original, received = P.map_reduce, []

    def recording_map_reduce(*args, **kwargs):
        """Record the largest array in each result that reaches the client."""
        result = original(*args, **kwargs)
        parts = result if isinstance(result, tuple) else (result.values,)
        received.append(max(np.size(part) for part in parts))
        return result

    monkeypatch.setattr(P, "map_reduce", recording_map_reduce)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20_000, 3))
    path = str(tmp_path / "X.zarr")
    z = zarr.create_array(path, shape=X.shape, dtype=X.dtype, chunks=(1500, 3))
    z[:] = X
    gm = GaussianMixture(2, covariance_type="diag", init_params="random_from_data", random_state=0)
    gm.fit(path)
    scores = gm.score_samples(zarr.open_array(path, mode="r"))
    assert isinstance(scores, da.Array)
    threshold = percentile(scores, 2, bins=16, max_gather=200)  # forces several passes
    expected = np.percentile(gm.score_samples(X), 2)
    np.testing.assert_allclose(threshold, expected, rtol=1e-13)
    assert len(received) >= 3  # range, at least one histogram, the final gather
    assert max(received) <= 250  # 16-bin histograms and at most ~max_gather values
    outliers = scores < threshold
    assert abs(int(outliers.sum().compute()) - 0.02 * len(X)) <= 1


@pytest.mark.parametrize("q", [0, 2, 37.5, 50, 99.9, 100])
def test_percentile_is_exact(q):
    rng = np.random.default_rng(2)
    values = np.concatenate([rng.normal(size=3000), np.full(500, 0.25), rng.integers(0, 5, 900)])
    rng.shuffle(values)
    lazy = da.from_array(values, chunks=401)
    assert percentile(lazy, q, bins=8, max_gather=64) == np.percentile(values, q)
    assert percentile(values, q) == np.percentile(values, q)
    with pytest.raises(ValueError, match="NaN"):
        percentile(da.from_array(np.array([1.0, np.nan, 2.0]), chunks=2), 5)


# --- sampling and information criteria -------------------------------------------------------


@pytest.mark.parametrize("ctype", TYPES)
def test_sample_shapes_reproducibility_and_distribution(ctype):
    X = _data()
    gm = GaussianMixture(K_COMPONENTS, covariance_type=ctype, random_state=4, **_init(ctype))
    gm.fit(X)
    Xs, ys = gm.sample(60_000)
    assert Xs.shape == (60_000, 3) and ys.shape == (60_000,)
    assert Xs.dtype == np.float64 and ys.dtype == np.int64
    assert (np.diff(ys) >= 0).all()  # grouped by component, as scikit-learn
    X2, y2 = gm.sample(60_000)
    np.testing.assert_array_equal(Xs, X2)
    np.testing.assert_array_equal(ys, y2)
    gm.set_params(random_state=5)
    assert not np.array_equal(gm.sample(10)[0], Xs[:10])
    # The draws follow the model: component frequencies, means and covariances.
    np.testing.assert_allclose(np.bincount(ys) / len(ys), gm.weights_, atol=0.01)
    cov = gm.covariances_
    if ctype == "full":
        dense = cov
    elif ctype == "tied":
        dense = np.broadcast_to(cov, (K_COMPONENTS, 3, 3))
    elif ctype == "diag":
        dense = np.stack([np.diag(c) for c in cov])
    else:
        dense = np.stack([c * np.eye(3) for c in cov])
    for j in range(K_COMPONENTS):
        part = Xs[ys == j]
        np.testing.assert_allclose(part.mean(axis=0), gm.means_[j], atol=0.06)
        np.testing.assert_allclose(np.cov(part.T), dense[j], atol=0.12)
    with pytest.raises(ValueError, match="n_samples"):
        gm.sample(0)


def test_bic_and_aic_pick_the_true_number_of_components():
    X = _data()
    Xd = da.from_array(X, chunks=(97, 3))
    bics, aics = [], []
    for k in range(1, 6):
        gm = GaussianMixture(k, init_params="k-means++", random_state=0, n_init=2).fit(Xd)
        bics.append(gm.bic(Xd))
        aics.append(gm.aic(Xd))
        sk = SkGaussianMixture(k).fit(X)
        assert gm._n_parameters() == sk._n_parameters()
    assert int(np.argmin(bics)) + 1 == K_COMPONENTS


# --- bad input -------------------------------------------------------------------------------


def _unreadable(n=600, d=3):
    """A lazy array whose data must not be read: any pass over it fails."""

    def explode(block_info=None):
        raise AssertionError("the data were read")

    return da.map_blocks(explode, chunks=((n // 2, n - n // 2), (d,)), dtype=np.float64)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_components": 700}, "n_samples >= n_components"),
        ({"covariance_type": "ful"}, "unknown covariance_type 'ful'; valid: 'full'"),
        ({"init_params": "kmeans||"}, "unknown init_params 'kmeans||'; valid: 'kmeans'"),
        ({"tol": -1.0}, "tol=-1.0"),
        ({"n_init": 0}, "n_init=0"),
        ({"weights_init": np.ones(4) / 4}, r"'weights' should have the shape of \(3,\)"),
        ({"weights_init": np.array([0.5, 0.6, 0.1])}, "should be normalized"),
        ({"means_init": np.zeros((3, 4))}, r"'means' should have the shape of \(3, 3\)"),
        ({"precisions_init": np.ones((3, 3))}, r"'full precision' should have the shape"),
        (
            {"precisions_init": np.stack([np.eye(3), np.eye(3), -np.eye(3)])},
            r"symmetric, positive-definite \(component 2\)",
        ),
        (
            {"covariance_type": "tied", "precisions_init": np.triu(np.ones((3, 3)))},
            "'tied precision' should be symmetric, positive-definite",
        ),
        (
            {"covariance_type": "diag", "precisions_init": np.zeros((3, 3))},
            "'diag precision' should be positive",
        ),
        (
            {"covariance_type": "spherical", "precisions_init": np.ones(2)},
            r"'spherical precision' should have the shape of \(3,\)",
        ),
    ],
)
def test_bad_parameters_raise_before_reading_data(kwargs, match):
    kwargs = {"n_components": K_COMPONENTS, **kwargs}
    with pytest.raises(ValueError, match=match):
        GaussianMixture(**kwargs).fit(_unreadable())


@pytest.mark.parametrize("init_params", ["random", "random_from_data", "k-means++"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_input_names_the_row(init_params, bad):
    X = _data().copy()
    X[321, 1] = bad
    gm = GaussianMixture(K_COMPONENTS, init_params=init_params, random_state=0)
    with pytest.raises(NonFiniteInputError, match="row 321"):
        gm.fit(da.from_array(X, chunks=(97, 3)))
    with pytest.raises(ValueError, match="row 321"):
        gm.fit(X)
    fitted = GaussianMixture(K_COMPONENTS, **_init("full")).fit(_data())
    for method in (fitted.predict, fitted.predict_proba, fitted.score_samples, fitted.score):
        with pytest.raises(ValueError, match="row 321"):
            method(X)
    # With every initial parameter given, the first EM pass finds it.
    with pytest.raises(ValueError, match="row 321"):
        GaussianMixture(K_COMPONENTS, **_init("full")).fit(X)


def test_wrong_number_of_features_at_predict():
    gm = GaussianMixture(K_COMPONENTS, **_init("full")).fit(_data())
    with pytest.raises(ValueError, match="4 features, but GaussianMixture is expecting 3"):
        gm.predict(da.zeros((10, 4), chunks=5))
    with pytest.raises(ValueError, match="expecting 3 features"):
        gm.predict(np.zeros((10, 4)))


def test_singular_covariance_error_hints_at_reg_covar():
    X = np.repeat(_data()[:3], 50, axis=0)  # three distinct points
    gm = GaussianMixture(4, reg_covar=0.0, init_params="random_from_data", random_state=0)
    with pytest.raises(ValueError, match="increase reg_covar"):
        gm.fit(X)


def test_convergence_warning_and_flags():
    X = _data()
    gm = GaussianMixture(K_COMPONENTS, max_iter=2, tol=0.0, **_init("full"))
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        gm.fit(X)
    assert not gm.converged_ and gm.n_iter_ == 2 and len(gm.lower_bounds_) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        gm.set_params(max_iter=100, tol=1e-3).fit(X)
    assert gm.converged_ and gm.n_iter_ < 100


def test_verbose_output(capsys):
    kwargs = dict(covariance_type="diag", verbose=2, verbose_interval=1, **_init("diag"))
    GaussianMixture(K_COMPONENTS, **kwargs).fit(_data())
    out = capsys.readouterr().out
    assert "Initialization 0" in out and "Iteration 1" in out and "converged" in out


# --- scikit-learn API conformance ------------------------------------------------------------


_ESTIMATORS = [
    GaussianMixture(init_params="k-means++", random_state=0),
    GaussianMixture(covariance_type="diag", init_params="random_from_data", random_state=0),
    GaussianMixture(random_state=0),
]


@parametrize_with_checks(_ESTIMATORS)
def test_sklearn_api(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
