"""The Gaussian mixture kernels on NumPy alone: statistics, combination, precision."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from bigclust._errors import NonFiniteRow
from bigclust.cluster import _kernels as cluster_kernels
from bigclust.driver import combine
from bigclust.mixture import _fused
from bigclust.mixture import _kernels as K

TYPES = K.COVARIANCE_TYPES


def _random_model(ctype, k, d, rng):
    """Weights, means, covariances and precision Cholesky factors of a random mixture."""
    weights = rng.dirichlet(np.ones(k))
    means = rng.normal(scale=3.0, size=(k, d))
    if ctype == "full":
        A = rng.normal(size=(k, d, d))
        cov = A @ np.swapaxes(A, 1, 2) + d * np.eye(d)
    elif ctype == "tied":
        A = rng.normal(size=(d, d))
        cov = A @ A.T + d * np.eye(d)
    elif ctype == "diag":
        cov = rng.uniform(0.5, 2.0, size=(k, d))
    else:
        cov = rng.uniform(0.5, 2.0, size=k)
    return weights, means, cov, _prec_chol(cov, ctype)


def _prec_chol(cov, ctype):
    if ctype in ("full", "tied"):
        mats = cov.reshape(-1, *cov.shape[-2:])
        out = np.stack([np.linalg.inv(np.linalg.cholesky(c)).T for c in mats])
        return out.reshape(cov.shape)
    return 1.0 / np.sqrt(cov)


def _dense_cov(cov, ctype, k, d):
    if ctype == "full":
        return cov
    if ctype == "tied":
        return np.broadcast_to(cov, (k, d, d))
    if ctype == "diag":
        return np.stack([np.diag(c) for c in cov])
    return np.stack([c * np.eye(d) for c in cov])


def _reference_stats(X, weights, means, cov, ctype, shift):
    """Naive E-step with scipy's densities, one row at a time in spirit."""
    k, d = means.shape
    dense = _dense_cov(cov, ctype, k, d)
    wlp = np.stack(
        [np.log(weights[j]) + multivariate_normal(means[j], dense[j]).logpdf(X) for j in range(k)],
        axis=1,
    )
    log_norm = np.logaddexp.reduce(wlp, axis=1)
    resp = np.exp(wlp - log_norm[:, None])
    Y = X - shift
    first = resp.T @ Y
    if ctype == "full":
        second = np.einsum("ik,ia,ib->kab", resp, Y, Y)
    elif ctype == "tied":
        second = Y.T @ Y
    elif ctype == "diag":
        second = resp.T @ Y**2
    else:
        second = resp.T @ (Y**2).sum(axis=1)
    return wlp, resp, K.GaussianStats(len(X), resp.sum(0), first, second, log_norm.sum())


def _assert_stats_close(a, b, rtol=1e-10):
    assert a.n_samples == b.n_samples
    for name in ("resp_sum", "first", "second"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape, name
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * np.abs(y).max(), err_msg=name)
    np.testing.assert_allclose(a.log_likelihood, b.log_likelihood, rtol=rtol)


@pytest.mark.parametrize("ctype", TYPES)
def test_e_step_matches_scipy_densities(ctype):
    rng = np.random.default_rng(0)
    k, d = 3, 4
    weights, means, cov, pc = _random_model(ctype, k, d, rng)
    X = rng.normal(scale=3.0, size=(500, d))
    shift = X[7]
    model = K.make_model(ctype, weights, means, pc, shift=shift)
    wlp, resp, expected = _reference_stats(X, weights, means, cov, ctype, shift)

    np.testing.assert_allclose(K.estimate_weighted_log_prob(X, model), wlp, rtol=1e-10)
    _assert_stats_close(K.e_step_stats(X, model), expected)
    np.testing.assert_allclose(K.predict_proba_block(X, (model, np.float64)), resp, atol=1e-12)
    np.testing.assert_array_equal(K.predict_block(X, model), wlp.argmax(axis=1))
    log_norm = np.logaddexp.reduce(wlp, axis=1)
    np.testing.assert_allclose(K.score_samples_block(X, (model, np.float64)), log_norm)
    np.testing.assert_allclose(K.log_prob_sum(X, model), log_norm.sum(), rtol=1e-12)


@pytest.mark.parametrize("ctype", TYPES)
def test_combine_equals_stats_of_concatenation(ctype, monkeypatch):
    # Small row blocks so that the chunks below also span several internal blocks.
    monkeypatch.setattr(K, "block_rows", lambda p, k: 64)
    rng = np.random.default_rng(1)
    k, d = 4, 3
    weights, means, _, pc = _random_model(ctype, k, d, rng)
    X = rng.normal(scale=3.0, size=(1000, d))
    model = K.make_model(ctype, weights, means, pc)
    whole = K.e_step_stats(X, model)
    cuts = [0, 1, 130, 131, 700, 1000]
    parts = [K.e_step_stats(X[a:b], model, a) for a, b in itertools.pairwise(cuts)]
    combined = parts[0]
    for part in parts[1:]:
        combined = combine(combined, part)
    assert isinstance(combined, K.GaussianStats)
    _assert_stats_close(combined, whole, rtol=1e-12)


@pytest.mark.parametrize("kind", ["random", "rows", "centers"])
@pytest.mark.parametrize("ctype", ["full", "tied", "spherical"])
def test_init_stats_do_not_depend_on_chunking(kind, ctype):
    rng = np.random.default_rng(2)
    k, d, n = 3, 2, 300
    X = rng.normal(size=(n, d)) * 5
    spec = K.InitResp(
        kind, ctype, k, X[0], seed=42, key=(1, 0),
        rows=np.array([5, 17, 250]), components=np.array([2, 0, 1]),
        centers=X[[5, 17, 250]],
    )  # fmt: skip
    whole = K.init_stats(X, spec, 0)
    parts = [K.init_stats(X[a:b], spec, a) for a, b in [(0, 17), (17, 18), (18, 300)]]
    combined = combine(combine(parts[0], parts[1]), parts[2])
    _assert_stats_close(combined, whole, rtol=1e-12)
    if kind == "random":
        assert np.isclose(whole.resp_sum.sum(), n)  # each row's responsibilities sum to 1
        assert (whole.resp_sum > 0.2 * n).all()
    elif kind == "rows":
        np.testing.assert_array_equal(whole.resp_sum, [1, 1, 1])
        np.testing.assert_allclose(whole.first, X[[17, 250, 5]] - X[0])
    else:
        assert whole.resp_sum.sum() == n
        labels = ((X[:, None, :] - X[[5, 17, 250]][None]) ** 2).sum(-1).argmin(1)
        np.testing.assert_array_equal(whole.resp_sum, np.bincount(labels, minlength=k))


def test_tied_second_moment_is_unweighted_like_sklearn():
    """scikit-learn's tied M-step uses X^T X over all rows, even rows without responsibility."""
    X = np.arange(12.0).reshape(6, 2)
    spec = K.InitResp(
        "rows", "tied", 2, np.zeros(2), rows=np.array([1, 4]), components=np.arange(2)
    )
    stats = K.init_stats(X, spec)
    np.testing.assert_allclose(stats.second, X.T @ X)
    np.testing.assert_array_equal(stats.resp_sum, [1.0, 1.0])


@pytest.mark.parametrize("ctype", TYPES)
def test_statistics_keep_precision_far_from_the_origin(ctype):
    """Same statistics for data at 1e6 (shift moved along) as at the origin, to ~1e-9."""
    rng = np.random.default_rng(3)
    k, d = 3, 3
    weights, means, _, pc = _random_model(ctype, k, d, rng)
    X = means[rng.integers(k, size=2000)] + rng.normal(size=(2000, d))
    offset = 1e6
    near = K.e_step_stats(X, K.make_model(ctype, weights, means, pc))
    far = K.e_step_stats(X + offset, K.make_model(ctype, weights, means + offset, pc))
    _assert_stats_close(far, near, rtol=1e-8)


def test_float32_blocks_accumulate_in_float64():
    rng = np.random.default_rng(4)
    weights, means, _, pc = _random_model("diag", 2, 3, rng)
    X = rng.normal(size=(5000, 3))
    model = K.make_model("diag", weights, means, pc)
    a = K.e_step_stats(X.astype(np.float32), model)
    b = K.e_step_stats(X.astype(np.float32).astype(np.float64), model)
    assert a.first.dtype == np.float64
    _assert_stats_close(a, b, rtol=1e-12)


def test_nonfinite_rows_are_visible_in_the_results():
    rng = np.random.default_rng(5)
    weights, means, _, pc = _random_model("full", 2, 2, rng)
    model = K.make_model("full", weights, means, pc)
    X = rng.normal(size=(50, 2))
    X[7, 1] = np.nan
    X[9, 0] = np.inf
    assert not np.isfinite(K.e_step_stats(X, model).log_likelihood)
    # Per-row outputs name the first bad row (the driver turns it into the global row), so
    # lazy and in-memory outputs fail the same way.
    for kernel, params in [
        (K.predict_block, model),
        (K.predict_proba_block, (model, np.float64)),
        (K.score_samples_block, (model, np.float64)),
    ]:
        with pytest.raises(NonFiniteRow) as info:
            kernel(X, params)
        assert info.value.local_row == 7
    assert (K.predict_block(np.delete(X, [7, 9], axis=0), model) >= 0).all()
    # Initialisation passes that give the bad rows no responsibility still report them.
    spec = K.InitResp(
        "rows", "full", 2, np.zeros(2), rows=np.array([0, 1]), components=np.arange(2)
    )
    assert not np.isfinite(K.init_stats(X, spec).log_likelihood)


# --- the compiled normalization against NumPy's ----------------------------------------------


def _numpy_normalize(wlp):
    return K._normalize_log(wlp.copy(), None)


def test_compiled_normalize_matches_numpy():
    """Far components (exp underflows), -inf, a column of -inf, a NaN column."""
    rng = np.random.default_rng(0)
    wlp = np.concatenate([rng.uniform(-3000, 0, (6, 900)), rng.uniform(-30, 5, (6, 900))])
    rng.shuffle(wlp, axis=0)
    wlp[:, :50] -= 1e4  # whole columns far below 0: only their maximum survives
    wlp[3, 100] = -np.inf
    wlp[:, 101] = -np.inf
    wlp[:, 102] = np.nan
    wlp[5, 103] = -720.0 + wlp[:, 103].max()  # exp lands in the subnormals: 0 here
    with np.errstate(invalid="ignore", divide="ignore"):
        resp, log_norm = _numpy_normalize(wlp)
        fast, fast_log_norm = K._normalize_log(wlp.copy(), _fused)
    np.testing.assert_allclose(fast, resp, rtol=4e-15, atol=1e-300)
    np.testing.assert_allclose(fast_log_norm, log_norm, rtol=4e-15)
    assert np.array_equal(np.isnan(fast), np.isnan(resp))
    assert np.isnan(fast_log_norm[102]) and fast_log_norm[101] == -np.inf
    assert fast[5, 103] == 0.0 < resp[5, 103]  # documented: below 2**-1021 is 0


def test_compiled_normalize_leaves_overflowed_columns_to_numpy():
    wlp = np.log(np.array([[0.2, 0.5], [0.8, 0.5]]))
    wlp[0, 1] = np.inf
    top, total = np.empty(2), np.empty(2)
    untouched = wlp.copy()
    assert not _fused.normalize(wlp, top, total)
    np.testing.assert_array_equal(wlp, untouched)
    with np.errstate(invalid="ignore"):
        resp, log_norm = _numpy_normalize(wlp)
        fast, fast_log_norm = K._normalize_log(wlp.copy(), _fused)
    np.testing.assert_array_equal(fast, resp)
    np.testing.assert_array_equal(fast_log_norm, log_norm)


@pytest.mark.parametrize("ctype", TYPES)
def test_compiled_e_step_matches_numpy(ctype, monkeypatch):
    rng = np.random.default_rng(1)
    k, d = 5, 3
    weights, means, _, pc = _random_model(ctype, k, d, rng)
    X = rng.normal(scale=8.0, size=(3000, d))  # rows far from some components
    model = K.make_model(ctype, weights, means, pc)
    monkeypatch.setitem(cluster_kernels.COMPILED_MIN_ELEMENTS, "e-step", 10**12)
    reference = K.e_step_stats(X, model)
    monkeypatch.setitem(cluster_kernels.COMPILED_MIN_ELEMENTS, "e-step", 0)
    fast = K.e_step_stats(X, model)
    _assert_stats_close(fast, reference, rtol=1e-13)
